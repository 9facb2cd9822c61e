// `afsfile status`, `afsfile detach` and `afsfile check` (the executable) against the real
// xenstored and a running worker.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import { setup, teardown } from '../helpers/hooks';
import * as assert from 'uvu/assert';
import { Toolstack } from '../../src/sim/toolstack';
import type { XenStoreClient } from '../../src/xen/xenstore-client';
import { run } from '../helpers/exe';
import { until } from '../helpers/wait';
import { type RunningWorker, startWorker, workerEnv } from '../helpers/worker';
import { type WorkerRig, startWorkerRig } from '../helpers/worker-rig';
import type { Xenstored } from '../helpers/xenstored';

let xs: Xenstored;
let c: XenStoreClient;
let ts: Toolstack;
let rig: WorkerRig;
let runDir: string;
let worker: RunningWorker;

const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => workerEnv(xs.socketPath, runDir, extra);

setup(test, async () => {
  rig = await startWorkerRig('afsfile-cmds-');
  ({ xs, c, ts, runDir, worker } = rig);
});

teardown(test, () => rig?.close(worker));

test('status merges worker.json and the device files; --json is machine-readable', async () => {
  const img = path.join(rig.dir, 'st.img');
  fs.writeFileSync(img, Buffer.alloc(1 << 20));
  await ts.createDomain(4);
  const p = await ts.addVbd({ domid: 4, target: img });
  await until('device status file', () => fs.existsSync(path.join(runDir, `status/dev-4-${p.devid}.json`)), 10_000);
  fs.writeFileSync(path.join(runDir, 'status/renew.json'), JSON.stringify({ version: '0', pid: process.pid, updated: new Date().toISOString(), managed: false }));
  let r = run(['status', '--json'], { env: env() });
  assert.is(r.status, 0, r.stderr);
  const m = JSON.parse(r.stdout) as { worker: { running: boolean; pid: number }; devices: Array<{ backend: string; state: string; running: boolean; image: string }>; renew: { managed: boolean } };
  assert.ok(m.worker.running);
  assert.is(m.worker.pid, worker.proc.pid);
  const d = m.devices.find((x) => x.backend === p.backend);
  assert.ok(d, r.stdout);
  assert.is(d!.image, img);
  assert.ok(d!.running);
  assert.is(m.renew.managed, false);
  r = run(['status'], { env: env() });
  assert.is(r.status, 0);
  assert.match(r.stdout, /^worker: running, pid \d+/);
  assert.match(r.stdout,
    /\nDomain +Vdev +Mode +State +Reads +Writes +InFlight +Errors +Restarts +LastFsync +Lock +Image\n/);
  // The guest's name comes from XenStore (the toolstack named it), the domid beside it.
  const name = await c.read('/local/domain/4/name');
  assert.match(r.stdout, new RegExp(`\\n${name}\\(4\\) +xvda +w +InitWait +0 +0 +0 +0 +0 +- +ex held +${img}\\n`));
  type Report = { schema: number; devices: Array<{ vdev: string; mode: string }> };
  const j = JSON.parse(run(['status', '--json'], { env: env() }).stdout) as Report;
  assert.is(j.schema, 1);
  assert.equal([j.devices[0]!.vdev, j.devices[0]!.mode], ['xvda', 'w']);
  assert.match(r.stdout, /renew: no keytab configured/);
  r = run(['status'], { env: env({ AFSFILE_RUN_DIR: path.join(rig.dir, 'nothing-here') }) });
  assert.is(r.status, 3);
  assert.match(r.stdout, /worker: not running/);
});

test('a second supervisor on the same run dir refuses to start', () => {
  const r = run(['worker', '--platform', 'sim'], { env: env() });
  assert.is(r.status, 1);
  assert.match(r.stderr, new RegExp(`another worker is already running \\(pid ${worker.proc.pid}`));
});

test('detach: online=0 + Closing in one transaction, waits for Closed', async () => {
  const img = path.join(rig.dir, 'det.img');
  fs.writeFileSync(img, Buffer.alloc(1 << 20));
  await ts.createDomain(5);
  const p = await ts.addVbd({ domid: 5, target: img, vdev: 'xvdb' });
  await until('opened', async () => (await c.tryRead(`${p.backend}/afsfile-status`)) === 'opened', 10_000);
  let r = run(['detach', '5', 'xvdb'], { env: env() });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /detached .*\/5\/51728 \(Closed\)/);
  assert.is(await c.read(`${p.backend}/state`), '6');
  assert.is(await c.read(`${p.backend}/online`), '0');
  r = run(['detach', '5', '51999'], { env: env() });
  assert.is(r.status, 1);
  assert.match(r.stderr, /domain 5 has no device 51999 under/);
  r = run(['detach', '7', 'xvdz'], { env: env() });
  assert.is(r.status, 1);
  assert.match(r.stderr, /domain 7 has no device xvdz \(devid 268441856\) under/, 'names what the user typed');
  r = run(['detach', 'five', 'xvda'], { env: env() });
  assert.is(r.status, 2);
  r = run(['detach', '5', 'xvdb'], { env: env({ XENSTORED_PATH: path.join(rig.dir, 'no-socket') }) });
  assert.is(r.status, 1);
  assert.match(r.stderr, /no-socket.*start it/);
});

function fakeRoot(opts: { blkback: boolean; devices: boolean; xen?: string }): string {
  const root = fs.mkdtempSync(path.join(rig.dir, 'root-'));
  if (opts.xen) {
    const dir = path.join(root, 'sys/hypervisor/version');
    fs.mkdirSync(dir, { recursive: true });
    const [major, minor] = opts.xen.split('.');
    fs.writeFileSync(path.join(dir, 'major'), `${major}\n`);
    fs.writeFileSync(path.join(dir, 'minor'), `${minor}\n`);
  }
  if (opts.devices) {
    fs.mkdirSync(path.join(root, 'dev/xen'), { recursive: true });
    for (const n of ['evtchn', 'gntdev']) fs.writeFileSync(path.join(root, 'dev/xen', n), '');
  }
  if (opts.blkback) fs.mkdirSync(path.join(root, 'sys/module/xen_blkback'), { recursive: true });
  // What install.sh makes (the link's target resolved inside the fake root).
  fs.mkdirSync(path.join(root, 'etc/xen/scripts'), { recursive: true });
  fs.mkdirSync(path.join(root, 'usr/lib/xen/bin'), { recursive: true });
  fs.writeFileSync(path.join(root, 'usr/lib/xen/bin/afsfile'), '#!/bin/sh\n', { mode: 0o755 });
  fs.symlinkSync('/usr/lib/xen/bin/afsfile', path.join(root, 'etc/xen/scripts/block-afsfile'));
  return root;
}

test('check: every problem named with its fix; exit status reflects them', () => {
  fs.rmSync(path.join(runDir, 'status/renew.json'), { force: true });
  let r = run(['check'], { env: env({ AFSFILE_CHECK_ROOT: fakeRoot({ blkback: false, devices: true }) }) });
  assert.is(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /ok   xenstored: answers at/);
  assert.match(r.stdout, /ok   worker: running/);
  assert.match(r.stdout, /all checks passed/);

  r = run(['check', '--json'], { env: env({ AFSFILE_CHECK_ROOT: fakeRoot({ blkback: true, devices: false }), XENSTORED_PATH: path.join(rig.dir, 'gone.sock') }) });
  assert.is(r.status, 1);
  const j = JSON.parse(r.stdout) as { ok: boolean; findings: Array<{ check: string; ok: boolean; detail: string; fix?: string }> };
  assert.is(j.ok, false);
  const f = (name: string) => j.findings.find((x) => x.check === name)!;
  assert.not.ok(f('xenstored').ok);
  assert.match(f('xenstored').detail, /gone\.sock/);
  assert.match(f('xenstored').fix!, /start xenstored/);
  assert.not.ok(f('/dev/xen/evtchn').ok);
  assert.match(f('/dev/xen/gntdev').fix!, /modprobe xen-gntdev/);
  assert.not.ok(f('xen-blkback').ok);
  assert.match(f('xen-blkback').fix!, /blacklist xen-blkback.*backendtype=tap/);
  for (const x of j.findings) if (!x.ok) assert.ok(x.fix, `${x.check} names a fix`);

  // Tokens: an expired ticket is a problem; a dead worker is one.
  fs.writeFileSync(path.join(runDir, 'status/renew.json'), JSON.stringify({
    version: '0', pid: process.pid, updated: new Date().toISOString(), managed: true, principal: 'afsfile/host@EXAMPLE',
    ticketExpires: new Date(Date.now() - 60_000).toISOString(), tokenExpires: null, lastError: { message: 'kinit: Cannot contact any KDC' }, failures: 3,
  }));
  r = run(['check'], { env: env({ AFSFILE_CHECK_ROOT: fakeRoot({ blkback: false, devices: true }) }) });
  assert.is(r.status, 1);
  assert.match(r.stdout, /FAIL tokens: no valid Kerberos ticket: kinit: Cannot contact any KDC\n     fix: check the keytab/);
  r = run(['check'], { env: env({ AFSFILE_CHECK_ROOT: fakeRoot({ blkback: false, devices: true }), AFSFILE_RUN_DIR: path.join(rig.dir, 'empty-run') }) });
  assert.match(r.stdout, /FAIL worker: not running.*\n     fix: systemctl start afsfile/);
});

test('check: the route and its disk line follow the Xen version; blkback is a problem only before 4.19', () => {
  fs.rmSync(path.join(runDir, 'status/renew.json'), { force: true });
  let r = run(['check'], { env: env({ AFSFILE_CHECK_ROOT: fakeRoot({ blkback: true, devices: true, xen: '4.20' }) }) });
  assert.is(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /ok   route: Xen 4\.20: vbd3 .*disk = /);
  const vbd3Line = "disk = ['vdev=xvda,access=rw,backendtype=tap,script=block-afsfile,target=/path/to/image']";
  assert.ok(r.stdout.includes(vbd3Line));
  assert.match(r.stdout, /ok   xen-blkback: loaded: it serves backend\/vbd disks/);
  r = run(['check'], { env: env({ AFSFILE_CHECK_ROOT: fakeRoot({ blkback: true, devices: true, xen: '4.17' }) }) });
  assert.is(r.status, 1);
  assert.match(r.stdout, /ok   route: Xen 4\.17: vbd \(kernel xen-blkback must be unloaded\): disk = /);
  assert.ok(r.stdout.includes("disk = ['vdev=xvda,access=rw,script=block-afsfile,target=/path/to/image']"));
  assert.match(r.stdout, /FAIL xen-blkback: the kernel's xen-blkback is loaded/);
  r = run(['check'], { env: env({ AFSFILE_CHECK_ROOT: fakeRoot({ blkback: false, devices: true, xen: '4.19' }) }) });
  assert.match(r.stdout, /ok   route: Xen 4\.19: vbd3/);
});

test('without /dev/xen: worker --platform auto exits 1 naming /dev/xen; --platform linux reports it on the device', async () => {
  if (fs.existsSync('/dev/xen')) return; // a real dom0: nothing to show here
  let r = run(['worker'], { env: env() });
  assert.is(r.status, 1);
  assert.match(r.stderr, /\/dev\/xen does not exist.*--platform sim/);
  assert.is(await worker.stop('SIGTERM'), 0);
  worker = await startWorker(xs.socketPath, runDir, ['--platform', 'linux']);
  const img = path.join(rig.dir, 'lin.img');
  fs.writeFileSync(img, Buffer.alloc(1 << 20));
  await ts.createDomain(6);
  const p = await ts.addVbd({ domid: 6, target: img });
  await until('afsfile-status=error', async () => (await c.tryRead(`${p.backend}/afsfile-status`)) === 'error', 10_000);
  assert.match((await c.read(`${p.backend}/afsfile-error`)), /linux platform.*\/dev\/xen/);
  r = run(['status', '--json'], { env: env() });
  const m = JSON.parse(r.stdout) as { devices: Array<{ backend: string; phase: string }> };
  await until('failed, not restarted', () => {
    const m2 = JSON.parse(run(['status', '--json'], { env: env() }).stdout) as typeof m;
    return m2.devices.find((d) => d.backend === p.backend)?.phase === 'failed';
  });
  const removal = await ts.removeVbd(p, { timeoutMs: 5000 });
  assert.ok(removal.closed, 'the supervisor answers the removal');
});

test.run();
