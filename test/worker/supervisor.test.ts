// The worker supervisor and its device processes against the real xenstored, with the test
// acting as libxl (src/sim/toolstack.ts), as the hotplug script and as a guest's blkfront.
import { setTimeout as sleep } from 'node:timers/promises';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import { setup, teardown } from '../helpers/hooks';
import * as assert from 'uvu/assert';
import { Toolstack, type VbdConfig, type VbdPaths } from '../../src/sim/toolstack';
import type { XenStoreClient } from '../../src/xen/xenstore-client';
import { alive } from '../helpers/proc-tree';
import { until } from '../helpers/wait';
import { type RunningWorker, startWorker } from '../helpers/worker';
import { type WorkerRig, startWorkerRig } from '../helpers/worker-rig';
import type { Xenstored } from '../helpers/xenstored';
import { sparseFile } from '../helpers/temp';

let xs: Xenstored;
let c: XenStoreClient;
let ts: Toolstack;
let rig: WorkerRig;
let runDir: string;
let worker: RunningWorker;
let nextDomid = 10;

function image(name: string, size = 1 << 20): string {
  return sparseFile(rig.dir, name, size);
}

/** Devices each test made, removed after it (so that later tests, and a restarted worker
 * adopting everything, stay small). */
let made: Array<{ p: VbdPaths; ours: boolean }> = [];

async function guest(cfg: Omit<VbdConfig, 'domid'> & { domid?: number }): Promise<VbdPaths> {
  const domid = cfg.domid ?? nextDomid++;
  if (cfg.domid === undefined) await ts.createDomain(domid);
  const p = await ts.addVbd({ ...cfg, domid });
  made.push({ p, ours: cfg.script === undefined });
  return p;
}

test.after.each(async () => {
  const list = made;
  made = [];
  // Nobody answers a foreign device's removal here (no blkback): just destroy those.
  await Promise.all(list.map(({ p, ours }) => (ours ? ts.removeVbd(p, { timeoutMs: 10_000 }) : ts.destroy(p)).catch(() => undefined)));
});

const read = (p: string): Promise<string | undefined> => c.tryRead(p);
const workerStatus = (): { devices: Array<Record<string, unknown>> } =>
  JSON.parse(fs.readFileSync(path.join(runDir, 'status/worker.json'), 'utf8')) as { devices: Array<Record<string, unknown>> };
const deviceEntry = (p: VbdPaths): Record<string, unknown> | undefined => {
  try {
    return workerStatus().devices.find((d) => d.backend === p.backend);
  } catch {
    return undefined;
  }
};
const childPid = (p: VbdPaths): Promise<number> => until(`${p.backend} child`, () => deviceEntry(p)?.childPid as number | undefined, 15_000);
const gone = (pid: number): boolean => !alive(pid);

/** Waits for afsfile-status=want; resolves with afsfile-error (or 'none'). */
async function afsfileStatus(p: VbdPaths, want: string): Promise<string> {
  try {
    return await until(`${p.backend}/afsfile-status=${want}`, async () =>
      (await read(`${p.backend}/afsfile-status`)) === want && ((await read(`${p.backend}/afsfile-error`)) ?? 'none'), 10_000);
  } catch (e) {
    throw new Error(`${(e as Error).message}\nworker log:\n${worker.stderr()}`);
  }
}

/** What blkfront publishes before going Initialised, with overrides (undefined = leave out);
 * then what the hotplug script writes on success. */
async function frontendConnects(p: VbdPaths, keys: Record<string, string | undefined>): Promise<void> {
  const all: Record<string, string | undefined> = { 'ring-ref': '8', 'event-channel': '5', protocol: 'x86_64-abi', ...keys };
  await c.transaction(async (tx) => {
    for (const [k, v] of Object.entries(all)) if (v !== undefined) await tx.write(`${p.frontend}/${k}`, v);
    await tx.write(`${p.frontend}/state`, '3');
  });
  await c.write(`${p.backend}/hotplug-status`, 'connected');
}

setup(test, async () => {
  rig = await startWorkerRig('afsfile-worker-');
  ({ xs, c, ts, runDir, worker } = rig);
});

teardown(test, () => rig?.close(worker));

test('claims block-afsfile devices at once: features + InitWait (latency printed)', async () => {
  const img = image('claim.img');
  const fromStart: number[] = [];
  const fromCommit: number[] = [];
  const added: VbdPaths[] = [];
  for (let i = 0; i < 12; i++) {
    const domid = nextDomid++;
    await ts.createDomain(domid);
    const backend = `/local/domain/0/backend/vbd/${domid}/51712`;
    let claimedAt = 0;
    const w = await c.watch(`${backend}/state`, () => void read(`${backend}/state`).then((v) => { if (v === '2' && !claimedAt) claimedAt = performance.now(); }));
    const t0 = performance.now();
    const p = await ts.addVbd({ domid, target: img, access: 'ro' });
    added.push(p);
    made.push({ p, ours: true });
    const t1 = performance.now();
    await until('InitWait', () => claimedAt > 0, 3000);
    await w.close();
    // One device at a time, as guests start: the next claim is not measured while this
    // device's process is starting.
    await afsfileStatus({ backend } as VbdPaths, 'opened');
    fromStart.push(claimedAt - t0);
    fromCommit.push(Math.max(0, claimedAt - t1));
    assert.is(await read(`${backend}/feature-max-indirect-segments`), '256');
    assert.is(await read(`${backend}/max-ring-page-order`), '4');
  }
  const q = (v: number[], f: number): number => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(f * v.length))]!;
  process.stdout.write(`claim latency over ${fromStart.length} devices: from the toolstack's first write median ${q(fromStart, 0.5).toFixed(1)} ms, ` +
    `p99 ${q(fromStart, 0.99).toFixed(1)} ms; from its commit median ${q(fromCommit, 0.5).toFixed(1)} ms, p99 ${q(fromCommit, 0.99).toFixed(1)} ms\n`);
  const inside = (workerStatus() as unknown as { claimLatencyMs?: { count: number; median: number; p99: number } }).claimLatencyMs;
  assert.ok(inside && inside.count >= fromStart.length, 'the supervisor reports its claim latency');
  process.stdout.write(`inside the supervisor (event -> InitWait committed): median ${inside!.median} ms, p99 ${inside!.p99} ms\n`);
  // The target is < 100 ms after libxl's write; the p99 is printed, not asserted, because this
  // machine's other load (several test suites, a TCG guest) decides the tail.
  assert.ok(q(fromCommit, 0.5) < 100, 'InitWait within 100 ms of the toolstack write');
  made = [];
  const removed = await Promise.all(added.map((p) => ts.removeVbd(p)));
  assert.ok(removed.every((r) => r.closed), 'every claimed device answered the removal');
});

test('the device process opens the image and reports afsfile-status=opened and a status file', async () => {
  const p = await guest({ target: image('open.img') });
  assert.is(await afsfileStatus(p, 'opened'), 'none');
  const f = path.join(runDir, `status/dev-${p.domid}-${p.devid}.json`);
  const st = await until('device status file', () => fs.existsSync(f) && JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, unknown>);
  assert.is(st.backend, p.backend);
  assert.is(st.readOnly, false);
  assert.is(st.state, 'InitWait');
  assert.type(st.pid, 'number');
});

test('devices of other scripts are never touched', async () => {
  const a = await guest({ target: image('other.img'), script: 'block' });
  const b = await guest({ target: image('other2.img'), script: '/etc/xen/scripts/block-afsfile-not' });
  const before = [(await c.directory(a.backend)).sort(), (await c.directory(b.backend)).sort()];
  // A device of ours created after them proves the worker had its chance to look.
  const ours = await guest({ target: image('after.img') });
  await afsfileStatus(ours, 'opened');
  await sleep(100);
  assert.equal([(await c.directory(a.backend)).sort(), (await c.directory(b.backend)).sort()], before);
  assert.is(await read(`${a.backend}/state`), '1');
  assert.is(await read(`${b.backend}/state`), '1');
});

test('backend/vbd3 (backendtype=tap, params aio:PATH) is served too', async () => {
  const p = await guest({ target: `aio:${image('tap.img')}`, kind: 'vbd3' });
  assert.ok(await ts.waitBackendState(p, 2, 3000));
  await afsfileStatus(p, 'opened');
});

test('bad params and bad frontend values: that device reports an error, the others keep running', async () => {
  const good = await guest({ target: image('good.img') });
  await afsfileStatus(good, 'opened');
  const goodPid = await childPid(good);

  const dir = path.join(rig.dir, 'a-directory');
  fs.mkdirSync(dir);
  const d1 = await guest({ target: dir });
  assert.match(await afsfileStatus(d1, 'error'), /is a directory/);
  const d2 = await guest({ target: path.join(rig.dir, 'missing.img') });
  assert.match(await afsfileStatus(d2, 'error'), /missing\.img.*does not exist/);
  const d3 = await guest({ target: 'relative/path.img' });
  assert.match(await afsfileStatus(d3, 'error'), /absolute path.*relative\/path\.img/);
  const odd = path.join(rig.dir, 'odd.img');
  fs.writeFileSync(odd, Buffer.alloc(1000));
  const d4 = await guest({ target: odd });
  assert.match(await afsfileStatus(d4, 'error'), /multiple of 512/);

  const cases: Array<[Record<string, string | undefined>, RegExp]> = [
    [{ 'ring-ref': 'abc' }, /ring-ref is not a number: "abc"/],
    [{ 'ring-ref': undefined, 'ring-page-order': '30', 'ring-ref0': '1' }, /ring-page-order 30 exceeds max-ring-page-order 4/],
    [{ 'ring-ref': undefined, 'ring-page-order': '1', 'ring-ref0': '1' }, /ring-ref1 is missing/],
    [{ protocol: 'sparc-abi' }, /unknown protocol "sparc-abi"/],
    [{ 'event-channel': undefined }, /event-channel is missing/],
    [{ 'event-channel': '-1' }, /event-channel is not a number: "-1"/],
    [{ 'multi-queue-num-queues': '99' }, /requested 99 queues, the maximum is 4/],
    [{ 'ring-ref': '99999999999' }, /ring-ref is not a number: "99999999999"/],
  ];
  // All at once: each is its own device process.
  await Promise.all(cases.map(async ([keys, re]) => {
    const p = await guest({ target: image(`fe-${nextDomid}.img`) });
    await afsfileStatus(p, 'opened');
    await frontendConnects(p, keys);
    assert.match(await afsfileStatus(p, 'error'), re);
    await until(`${p.backend} Closing, as xenbus_dev_fatal`, async () => (await read(`${p.backend}/state`)) === '5');
  }));
  assert.is(deviceEntry(good)?.childPid, goodPid, 'the good device process kept running');
  assert.is(await read(`${good.backend}/afsfile-status`), 'opened');
  assert.ok(worker.proc.exitCode === null, 'the supervisor kept running');
  // A device in error still answers libxl's removal.
  assert.ok((await ts.removeVbd(d1, { timeoutMs: 5000 })).closed);
});

test('exclusivity: rw excludes every other user, ro+ro is allowed; busy, naming the domain', async () => {
  const img = image('shared.img');
  const a = await guest({ target: img });
  await afsfileStatus(a, 'opened');
  const b = await guest({ target: img, access: 'ro' });
  assert.match(await afsfileStatus(b, 'busy'), new RegExp(`in use read-write by domain ${a.domid}`));
  // The same file through a symlink.
  const link = path.join(rig.dir, 'link.img');
  fs.symlinkSync(img, link);
  const l = await guest({ target: link });
  assert.match(await afsfileStatus(l, 'busy'), new RegExp(`domain ${a.domid}`));

  const ro = image('ro.img');
  const r1 = await guest({ target: ro, access: 'ro' });
  const r2 = await guest({ target: ro, access: 'ro' });
  await afsfileStatus(r1, 'opened');
  await afsfileStatus(r2, 'opened');
  const r3 = await guest({ target: ro, access: 'rw' });
  assert.match(await afsfileStatus(r3, 'busy'), /in use read-only by domain/);

  // libxl removes a refused device: the supervisor answers Closed for it.
  assert.ok((await ts.removeVbd(b, { timeoutMs: 3000 })).closed);
  // Once the rw user is gone the image is free again.
  assert.ok((await ts.removeVbd(a, { timeoutMs: 10_000 })).closed);
  const again = await guest({ target: img });
  await afsfileStatus(again, 'opened');
});

test('libxl-style teardown: online=0 + state=5 in one transaction -> Closed well within 10 s', async () => {
  const p = await guest({ target: image('teardown.img') });
  await afsfileStatus(p, 'opened');
  const pid = await childPid(p);
  const r = await ts.removeVbd(p);
  assert.ok(r.closed);
  assert.ok(r.waitedMs < 8000, `took ${r.waitedMs} ms`);
  await until('child exits', () => gone(pid));
  await until('forgotten', () => deviceEntry(p) === undefined);
  assert.not.ok(fs.existsSync(path.join(runDir, `status/dev-${p.domid}-${p.devid}.json`)));
});

test('a backend dir re-created by libxl (same path, state=1 again) is a new device', async () => {
  const img = image('reuse.img');
  const p = await guest({ target: img });
  await afsfileStatus(p, 'opened');
  // Closed, but the dirs are left in place (no libxl__device_destroy yet).
  assert.ok((await ts.removeVbd(p, { destroy: false })).closed);
  await until('closed entry', () => deviceEntry(p)?.phase === 'closed' || deviceEntry(p) === undefined);
  await ts.addVbd({ domid: p.domid, target: img }); // rm + mkdir + keys in one transaction
  assert.ok(await ts.waitBackendState(p, 2, 5000), 'claimed again');
  await until('served again', () => deviceEntry(p)?.phase === 'running' && deviceEntry(p)?.childPid !== undefined);
});

test('a killed device process is restarted (and counted)', async () => {
  const p = await guest({ target: image('crash.img') });
  await afsfileStatus(p, 'opened');
  const pid = await childPid(p);
  process.kill(pid, 'SIGKILL');
  const pid2 = await until('restarted child', () => {
    const e = deviceEntry(p);
    return e?.childPid !== pid && e?.phase === 'running' && (e.childPid as number | undefined);
  });
  assert.is.not(pid2, pid);
  assert.is(deviceEntry(p)?.restarts, 1);
  const f = path.join(runDir, `status/dev-${p.domid}-${p.devid}.json`);
  await until('restarts in the device status', () => {
    try {
      const s = JSON.parse(fs.readFileSync(f, 'utf8')) as { pid: number; restarts: number };
      return s.pid === pid2 && s.restarts === 1;
    } catch {
      return false;
    }
  });
  assert.ok((await ts.removeVbd(p, { timeoutMs: 5000 })).closed, 'the restarted process answers the removal');
});

test('@releaseDomain: devices of a domain that is gone are released', async () => {
  const domid = nextDomid++;
  await ts.createDomain(domid);
  await c.introduceDomain(domid, 1, 1);
  const img = image('dying.img');
  const p = await ts.addVbd({ domid, target: img });
  made.push({ p, ours: false });
  await afsfileStatus(p, 'opened');
  const pid = await childPid(p);
  await c.rm(`/local/domain/${domid}`);
  await c.releaseDomain(domid);
  await until('released', () => deviceEntry(p) === undefined);
  await until('child exits', () => gone(pid));
  const q = await guest({ target: img });
  await afsfileStatus(q, 'opened');
});

test('SIGTERM: children quiesce, the supervisor exits 0, XenStore state is left; a new worker adopts', async () => {
  const p = await guest({ target: image('adopt.img') });
  await afsfileStatus(p, 'opened');
  const stateBefore = await read(`${p.backend}/state`);
  const pid = await childPid(p);
  assert.is(await worker.stop('SIGTERM'), 0, worker.stderr());
  assert.ok(gone(pid), 'the child exited');
  assert.is(await read(`${p.backend}/state`), stateBefore);
  assert.is(await read(`${p.backend}/online`), '1');
  worker = await startWorker(xs.socketPath, runDir);
  await childPid(p);
  // The rebuilt table still protects the adopted device's image.
  const rival = await guest({ target: path.join(rig.dir, 'adopt.img') });
  assert.match(await afsfileStatus(rival, 'busy'), new RegExp(`domain ${p.domid}`));
});

test('a supervisor killed outright: its children quiesce, keep the image lock, and leave once the next one ' +
  're-attaches', async () => {
  const p = await guest({ target: image('orphan.img') });
  await afsfileStatus(p, 'opened');
  const pid = await childPid(p);
  await worker.stop('SIGKILL');
  const f = path.join(runDir, `status/dev-${p.domid}-${p.devid}.json`);
  await until('the orphaned child waits for the next one', () => {
    try {
      return (JSON.parse(fs.readFileSync(f, 'utf8')) as { handingOn?: boolean }).handingOn === true;
    } catch {
      return false; // not written yet, or being replaced
    }
  }, 15_000);
  assert.not.ok(gone(pid), 'it keeps the image lock meanwhile');
  worker = await startWorker(xs.socketPath, runDir);
  const pid2 = await childPid(p);
  assert.is.not(pid2, pid);
  await until('orphaned child leaves', () => gone(pid), 15_000);
});

test('xenstored restart: the worker reconnects and claims new devices', async () => {
  await xs.restart();
  // The restarted daemon has an empty store (as cxenstored without live update).
  const p = await guest({ target: image('after-restart.img') });
  assert.ok(await ts.waitBackendState(p, 2, 5000), worker.stderr());
  await afsfileStatus(p, 'opened');
  await until('the reconnect is logged', () => /reconnected/.test(worker.stderr()), 2000).catch(() => assert.unreachable(worker.stderr()));
  assert.ok(worker.proc.exitCode === null);
});

test.run();
