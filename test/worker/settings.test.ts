// A running device does not depend on the config file as it is now: what was advertised to a
// frontend stays in force across worker restarts with lower limits (read back from the backend
// directory), and a device process never reads the config file (the supervisor passes every
// setting), so a typo being edited cannot break a device restarted after a crash. Real
// xenstored, real worker and device processes (sim platform), a simulated guest.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimBlkfront } from '../../src/sim/blkfront';
import { SimGuest } from '../../src/sim/guest';
import { deviceExec } from '../../src/worker/device-privileges';
import { pattern } from '../helpers/pattern';
import { setTimeout as sleep } from 'node:timers/promises';
import { until } from '../helpers/wait';
import { type RunningWorker, startWorker } from '../helpers/worker';
import { type WorkerRig, startWorkerRig } from '../helpers/worker-rig';

let rig: WorkerRig;
let worker: RunningWorker;
const guests: SimGuest[] = [];

test.before(async () => {
  rig = await startWorkerRig('afsfile-settings-', { config: 'max-queues = 4\nmax-indirect-segments = 256\n' });
  worker = rig.worker;
  fs.mkdirSync(path.join(rig.dir, 'sim'), { recursive: true });
});

test.after(async () => {
  for (const g of guests) g.close();
  await rig.close(worker);
});

/** p, or a failure naming `what` after ms (a frontend that lost its backend waits forever). */
function within<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms\n${worker.stderr()}`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}

const config = (text: string): void => fs.writeFileSync(path.join(rig.dir, 'afsfile.conf'), text);

async function connectedGuest(domid: number, opts: { maxQueues: number; maxIndirectSegments: number }) {
  const img = path.join(rig.dir, `d${domid}.img`);
  fs.writeFileSync(img, '');
  fs.truncateSync(img, 8 << 20);
  const guest = new SimGuest({ domid, dir: path.join(rig.dir, 'sim'), pages: 2048 });
  guests.push(guest);
  await guest.listen();
  await rig.ts.createDomain(domid);
  const vbd = await rig.ts.addVbd({ domid, target: img });
  assert.ok(await rig.ts.waitBackendState(vbd, 2, 5000), 'InitWait');
  const front = new SimBlkfront({ xs: rig.c, guest, devid: vbd.devid, queueDepth: 8, timeoutMs: 5000, ...opts });
  const connecting = front.connect();
  await until('image opened', async () => (await rig.c.tryRead(`${vbd.backend}/afsfile-status`)) === 'opened', 10_000);
  await rig.c.write(`${vbd.backend}/hotplug-status`, 'connected');
  const info = await connecting;
  return { vbd, front, info, img };
}

function devicePid(runDir: string, domid: number, devid: number): number | undefined {
  try {
    return (JSON.parse(fs.readFileSync(path.join(runDir, `status/dev-${domid}-${devid}.json`), 'utf8')) as { pid: number }).pid;
  } catch {
    return undefined;
  }
}

test('a worker restarted with lower limits keeps what was advertised to a connected frontend', async () => {
  const { vbd, front, info, img } = await connectedGuest(60, { maxQueues: 2, maxIndirectSegments: 128 });
  assert.is(info.queues, 2);
  const big = pattern(512 * 1024, 1); // 128 segments: one indirect request
  await front.write(0, big);
  assert.is(await worker.stop('SIGTERM'), 0, worker.stderr());
  config('max-queues = 1\nmax-indirect-segments = 16\n');
  worker = await startWorker(rig.xs.socketPath, rig.runDir);
  // Both queues and the 512 KiB request go on as before.
  await within(front.write(2048, pattern(512 * 1024, 2), { queue: 1 }), '512 KiB write on queue 1');
  await within(front.write(4096, pattern(4096, 3), { queue: 0 }), 'write on queue 0');
  await within(front.flush(), 'flush');
  assert.equal(await within(front.read(2048, 512 * 1024), 'read back'), pattern(512 * 1024, 2));
  assert.is(await rig.c.tryRead(`${vbd.backend}/afsfile-error`), undefined, worker.stderr());
  assert.is(await rig.c.tryRead(`${vbd.backend}/state`), '4');
  assert.is(await rig.c.tryRead(`${vbd.backend}/multi-queue-max-queues`), '4', 'the advertisement is not rewritten');
  const disk = fs.readFileSync(img);
  assert.ok(Buffer.from(pattern(512 * 1024, 2)).equals(disk.subarray(2048 * 512, 2048 * 512 + 512 * 1024)));
  assert.ok((await rig.ts.removeVbd(vbd, { timeoutMs: 10_000 })).closed);
  config('max-queues = 4\nmax-indirect-segments = 256\n');
});

test('a config typo does not break a device process restarted after a crash', async () => {
  const { vbd, front } = await connectedGuest(61, { maxQueues: 1, maxIndirectSegments: 32 });
  await front.write(0, pattern(8192, 5));
  const pid = await until('device pid', () => devicePid(rig.runDir, vbd.domid, vbd.devid));
  config('max-queues = 4\nmax-indirect-segmnets = 64   # a typo\n');
  process.kill(pid, 'SIGKILL');
  const pid2 = await until('restarted', () => {
    const p = devicePid(rig.runDir, vbd.domid, vbd.devid);
    return p !== undefined && p !== pid && p;
  }, 10_000);
  await within(front.write(16, pattern(8192, 6)), 'write after the restart');
  await within(front.flush(), 'flush');
  assert.equal(await within(front.read(16, 8192), 'read back'), pattern(8192, 6));
  await sleep(300);
  assert.is(devicePid(rig.runDir, vbd.domid, vbd.devid), pid2, 'no crash loop');
  assert.is(await rig.c.tryRead(`${vbd.backend}/afsfile-error`), undefined, worker.stderr());
  assert.ok((await rig.ts.removeVbd(vbd, { timeoutMs: 10_000 })).closed);
  config('max-queues = 4\nmax-indirect-segments = 256\n');
});

test('the device process runs without capabilities (every thread), keeps its groups', async () => {
  const { vbd, front } = await connectedGuest(62, { maxQueues: 1, maxIndirectSegments: 32 });
  await within(front.write(0, pattern(4096, 9)), 'write');
  const pid = await until('device pid', () => devicePid(rig.runDir, vbd.domid, vbd.devid));
  const field = (st: string, name: string): string =>
    new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(st)?.[1]?.trim() ?? '?';
  const tasks = fs.readdirSync(`/proc/${pid}/task`);
  assert.ok(tasks.length > 1, 'Node runs several threads');
  for (const t of tasks) {
    const st = fs.readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
    for (const set of ['CapEff', 'CapPrm', 'CapBnd', 'CapAmb', 'CapInh']) {
      assert.is(field(st, set), '0000000000000000', `thread ${t} ${set}`);
    }
    assert.is(field(st, 'NoNewPrivs'), '1');
  }
  const sup = fs.readFileSync(`/proc/${worker.proc.pid}/status`, 'utf8');
  const own = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  assert.is(field(own, 'Groups'), field(sup, 'Groups'), 'supplementary groups kept');
  assert.ok((await rig.ts.removeVbd(vbd, { timeoutMs: 10_000 })).closed);
});

test('deviceExec: KRB5CCNAME dropped; setpriv empties every capability set before exec', () => {
  const env = { KRB5CCNAME: 'FILE:/run/afsfile/krb5cc', PATH: '/usr/bin' };
  const r = deviceExec('/x/afsfile', ['worker', '--device', 'B'], env, '/usr/bin/setpriv');
  assert.is(r.env.KRB5CCNAME, undefined);
  assert.is(r.env.PATH, '/usr/bin');
  assert.is(r.command, '/usr/bin/setpriv');
  const drop = ['--bounding-set=-all', '--inh-caps=-all', '--ambient-caps=-all', '--no-new-privs'];
  assert.equal(r.args, [...drop, '--', '/x/afsfile', 'worker', '--device', 'B']);
  const none = deviceExec('/x/afsfile', ['worker'], { KRB5CCNAME: 'x' }, null);
  assert.equal(none, { command: '/x/afsfile', args: ['worker'], env: {} });
});

test.run();
