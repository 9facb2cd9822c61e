// The per-device XenStore state machine over the simulator: claim, open, connect only when
// the frontend is Initialised and hotplug-status=connected, the keys of the connect
// transaction, I/O, reconnect, removal within the deadline, restart with replay, and every bad
// frontend value (afsfile-error, Closing, no crash).
import { setTimeout as sleep } from 'node:timers/promises';
import * as fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlkifOp } from '../../src/blkif/constants';
import { SimHypervisor } from '../../src/sim/platform';
import { SimStore } from '../../src/sim/xenstore';
import { Toolstack } from '../../src/sim/toolstack';
import { claimDevice } from '../../src/worker/device/claim';
import { Device } from '../../src/worker/device/device';
import { pattern } from '../helpers/pattern';
import { rig } from '../helpers/sim-rig';
import { until } from '../helpers/wait';

test('claim: features then InitWait; a device past Initialising is left alone', async () => {
  const store = new SimStore();
  const xs = store.connect(0);
  const ts = new Toolstack(xs);
  await ts.createDomain(3);
  const p = await ts.addVbd({ domid: 3, target: '/nonexistent/x.img' });
  assert.ok(await claimDevice(xs, p.backend, { maxQueues: 2 }));
  assert.is(await xs.read(`${p.backend}/state`), '2');
  assert.is(await xs.read(`${p.backend}/feature-max-indirect-segments`), '256');
  assert.is(await xs.read(`${p.backend}/multi-queue-max-queues`), '2');
  assert.is(await xs.read(`${p.backend}/max-ring-page-order`), '4');
  await xs.write(`${p.backend}/state`, '4');
  assert.not.ok(await claimDevice(xs, p.backend));
  assert.is(await xs.read(`${p.backend}/state`), '4');
  assert.not.ok(await claimDevice(xs, '/local/domain/0/backend/vbd/3/999'));
  assert.is(await xs.tryRead('/local/domain/0/backend/vbd/3/999/state'), undefined, 'never creates a removed device');
});

test('connect: keys of the one transaction, Connected, verified I/O', async () => {
  const r = await rig();
  const be = r.paths.backend;
  const xs = r.dom0;
  assert.is(await xs.read(`${be}/afsfile-status`), 'opened');
  assert.is(await xs.tryRead(`${be}/afsfile-error`), undefined);
  assert.is(await xs.read(`${be}/state`), '4');
  assert.is(await xs.read(`${be}/sectors`), String(8 * 2048));
  assert.is(await xs.read(`${be}/sector-size`), '512');
  assert.is(await xs.read(`${be}/info`), '0');
  assert.is(await xs.read(`${be}/feature-flush-cache`), '1');
  assert.is(await xs.read(`${be}/feature-barrier`), '1');
  assert.is(await xs.read(`${be}/feature-discard`), '1');
  assert.is(await xs.read(`${be}/discard-granularity`), '4096');
  assert.is(await xs.read(`${be}/discard-alignment`), '0');
  const data = pattern(64 * 1024, 7);
  await r.front.write(40, data);
  assert.equal(await r.front.read(40, data.length), data);
  await r.front.flush();
  assert.ok(r.files[0].fsyncs >= 1, 'flush reached fsync');
  assert.equal(new Uint8Array(fs.readFileSync(r.imagePath).subarray(40 * 512, 40 * 512 + data.length)), data);
  await r.front.discard(2048, 2048);
  assert.equal(await r.front.read(2048, 4096), new Uint8Array(4096));
  const st = r.device.stats();
  assert.ok(st.connected && st.queues === 1 && st.engine!.requests.write >= 1);
  await r.close();
});

test('no Connected before hotplug-status=connected; then at once', async () => {
  const r = await rig({ hotplug: false, connect: false });
  const be = r.paths.backend;
  const connecting = r.front.connect();
  await until('frontend Initialised', async () => (await r.dom0.tryRead(`${r.paths.frontend}/state`)) === '3', 3000);
  await sleep(50);
  assert.is(await r.dom0.read(`${be}/state`), '2', 'waits for the hotplug script');
  await r.toolstack.hotplugConnected(r.paths);
  await connecting;
  assert.is(await r.dom0.read(`${be}/state`), '4');
  await r.close();
});

test('mode r: VDISK_READONLY, no discard, writes fail, reads work', async () => {
  const r = await rig({ vbd: { access: 'ro' } });
  const be = r.paths.backend;
  assert.is(await r.dom0.read(`${be}/info`), '4');
  assert.is(await r.dom0.tryRead(`${be}/feature-discard`), undefined);
  assert.ok(r.front.info.readOnly);
  assert.equal(await r.front.read(0, 4096), new Uint8Array(4096));
  // A guest that writes anyway (blkfront would refuse; a hostile one does not).
  const q = r.front.raw;
  const page = q.grantPage(true, pattern(4096, 1));
  const base = { kind: 'rw' as const, handle: 0, indirectGrefs: [], innerOperation: BlkifOp.WRITE, nrSegments: 1, sectorNumber: 0n, segments: [{ gref: page.gref, firstSect: 0, lastSect: 7 }] };
  q.putRequest({ ...base, operation: BlkifOp.WRITE, id: 700n });
  q.putRequest({ ...base, operation: BlkifOp.WRITE_BARRIER, id: 701n });
  q.putRequest({ ...base, operation: BlkifOp.FLUSH_DISKCACHE, id: 702n });
  q.putRequest({ kind: 'discard', operation: BlkifOp.DISCARD, flag: 0, handle: 0, id: 703n, sectorNumber: 0n, nrSectors: 8n });
  q.push();
  await until('four answers', () => q.unmatched().length >= 4, 3000);
  assert.equal(q.unmatched().map((x) => [x.id, x.status]), [[700n, -1], [701n, -1], [702n, -1], [703n, -2]]);
  assert.ok(fs.readFileSync(r.imagePath).subarray(0, 4096).every((x) => x === 0), 'the image is untouched');
  await r.close();
});

test('discard-enable=0: no feature-discard', async () => {
  const r = await rig({ vbd: { discardEnable: false } });
  assert.is(await r.dom0.tryRead(`${r.paths.backend}/feature-discard`), undefined);
  await r.close();
});

test('an image that cannot be opened: afsfile-status=error with a clear message; removal still closes', async () => {
  const r = await rig({
    connect: false,
    hotplug: false,
    vbd: { target: '/nonexistent/dir/disk.img' },
    device: { engine: { fsyncIntervalMs: 0 } },
  });
  const be = r.paths.backend;
  assert.is(await r.dom0.read(`${be}/afsfile-status`), 'error');
  assert.match(await r.dom0.read(`${be}/afsfile-error`), /does not exist/);
  assert.is(await r.dom0.read(`${be}/state`), '2');
  const res = await r.toolstack.removeVbd(r.paths, { timeoutMs: 3000 });
  assert.ok(res.closed);
  await r.device.closed;
  await r.close();
});

test('bad params and mode values are reported, never followed', async () => {
  for (const [key, value, msg] of [
    ['params', 'relative/disk.img', /absolute path/],
    ['params', '', /missing or empty/],
    ['mode', 'rw', /mode must be r or w/],
  ] as const) {
    const store = new SimStore();
    const xs = store.connect(0);
    const ts = new Toolstack(xs);
    await ts.createDomain(4);
    const p = await ts.addVbd({ domid: 4, target: '/tmp/x.img' });
    await xs.write(`${p.backend}/${key}`, value);
    await claimDevice(xs, p.backend);
    const hv = new SimHypervisor();
    const dev = new Device(xs, hv.platform(), p.backend, { warn: () => undefined });
    await dev.start();
    assert.is(await xs.read(`${p.backend}/afsfile-status`), 'error');
    assert.match(await xs.read(`${p.backend}/afsfile-error`), msg);
    await ts.removeVbd(p, { timeoutMs: 2000 });
    await dev.closed;
    hv.close();
  }
});

/** Writes frontend keys by hand as the guest, then Initialised; returns the backend's verdict. */
async function badFrontend(
  keys: Record<string, string>,
): Promise<{ state: string; error: string; status: string; warnings: string[] }> {
  const r = await rig({ connect: false });
  const gx = r.store.connect(5);
  const g = r.guest;
  const ring = g.grant(g.allocPages(1), false);
  const port = g.allocUnboundPort(0);
  const base: Record<string, string> = {
    'ring-ref': String(ring),
    'event-channel': String(port),
    protocol: 'x86_64-abi',
  };
  const all = { ...base, ...keys };
  for (const [k, v] of Object.entries(all)) {
    if (v === '<absent>') continue;
    await gx.write(`${r.paths.frontend}/${k}`, v);
  }
  await gx.write(`${r.paths.frontend}/state`, '3');
  const be = r.paths.backend;
  await until(
    'a verdict',
    async () =>
      (await r.dom0.tryRead(`${be}/afsfile-error`)) !== undefined || (await r.dom0.read(`${be}/state`)) === '4',
    3000,
  );
  await until('a state', async () => ['4', '5', '6'].includes(await r.dom0.read(`${be}/state`)), 3000);
  const out = {
    state: await r.dom0.read(`${be}/state`),
    error: (await r.dom0.tryRead(`${be}/afsfile-error`)) ?? '',
    status: (await r.dom0.tryRead(`${be}/afsfile-status`)) ?? '',
    warnings: r.warnings.slice(),
  };
  // The device is alive: removal still works.
  const res = await r.toolstack.removeVbd(r.paths, { timeoutMs: 3000 });
  assert.ok(res.closed, 'removal after a bad frontend');
  await r.close();
  return out;
}

test('bad frontend values: afsfile-error, Closing, no crash', async () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ 'ring-ref': 'abc' }, /ring-ref is not a number/],
    [{ 'ring-ref': '-1' }, /ring-ref is not a number/],
    [{ 'ring-ref': '99999999999' }, /ring-ref is not a number/],
    [{ 'ring-ref': '<absent>' }, /ring-ref is missing/],
    [{ 'ring-page-order': '5', 'ring-ref0': '8' }, /ring-page-order 5 exceeds max-ring-page-order 4/],
    [{ 'ring-page-order': '1', 'ring-ref0': '8' }, /ring-ref1 is missing/],
    [{ protocol: 'arm-abi' }, /not supported/],
    [{ protocol: 'sparc-abi' }, /unknown protocol/],
    [{ 'event-channel': '<absent>' }, /event-channel is missing/],
    [{ 'event-channel': '7x' }, /event-channel is not a number/],
    [{ 'multi-queue-num-queues': '0' }, /requested 0 queues/],
    [{ 'multi-queue-num-queues': '9' }, /requested 9 queues, the maximum is 4/],
    [{ 'ring-ref': '4000' }, /cannot map ring/],
    [{ 'event-channel': '77' }, /cannot bind event channel/],
  ];
  for (const [keys, msg] of cases) {
    const v = await badFrontend(keys);
    assert.match(v.error, msg, JSON.stringify(keys));
    assert.is(v.status, 'error');
    assert.is(v.state, '5', `Closing for ${JSON.stringify(keys)}`);
  }
});

test('multi-queue, multi-page rings, x86_32, indirect', async () => {
  const r = await rig({
    front: { maxQueues: 3, maxRingPageOrder: 2, protocol: 'x86_32-abi', maxIndirectSegments: 256 },
  });
  assert.is(r.device.stats().queues, 3);
  const ops: Promise<void>[] = [];
  for (let q = 0; q < 3; q++) ops.push(r.front.write(q * 4096, pattern(512 * 1024, q), { queue: q }));
  await Promise.all(ops);
  for (let q = 0; q < 3; q++)
    assert.equal(await r.front.read(q * 4096, 512 * 1024, { queue: (q + 1) % 3 }), pattern(512 * 1024, q));
  assert.ok(r.front.stats.indirect > 0);
  assert.ok(r.device.stats().engine!.requests.indirect > 0);
  await r.close();
});

test('reconnect: Closing → Closed → Initialising → InitWait → Connected, data intact', async () => {
  const r = await rig();
  const data = pattern(8192, 3);
  await r.front.write(0, data);
  await r.front.reconnect();
  assert.is(await r.dom0.read(`${r.paths.backend}/state`), '4');
  assert.is(r.device.stats().connects, 2);
  assert.equal(await r.front.read(0, 8192), data);
  await r.close();
});

test('frontend closes: backend Closed after fsync; the device stays for a new frontend', async () => {
  const r = await rig();
  await r.front.write(0, pattern(4096, 1));
  const before = r.files[0].fsyncs;
  await r.front.close();
  await until('Closed', async () => (await r.dom0.read(`${r.paths.backend}/state`)) === '6', 3000);
  assert.ok(r.files[0].fsyncs > before, 'fsync before Closed');
  assert.not.ok(r.device.stats().connected);
  await r.dom0.write(`${r.paths.frontend}/state`, '1');
  await until('InitWait again', async () => (await r.dom0.read(`${r.paths.backend}/state`)) === '2', 3000);
  const f2 = r.newFront();
  await f2.connect();
  assert.equal(await f2.read(0, 4096), pattern(4096, 1));
  await f2.close();
  await r.close();
});

test('libxl removal (online=0, state=5): Closed well within 10 s, fsynced, closed resolves', async () => {
  const r = await rig();
  await r.front.write(0, pattern(4096, 2));
  const res = await r.toolstack.removeVbd(r.paths, { timeoutMs: 10_000, destroy: false });
  assert.ok(res.closed);
  assert.ok(res.waitedMs < 2000, `took ${res.waitedMs} ms`);
  await r.device.closed;
  assert.ok(r.files[0].fsyncs >= 1);
  await r.close();
});

test('removal while fsync keeps failing or hangs: Closed by the deadline anyway', async () => {
  for (const mode of ['fail', 'hang'] as const) {
    const r = await rig({ device: { closeDeadlineMs: 300, engine: { fsyncIntervalMs: 0, holdTimeoutMs: 700 } } });
    await r.front.write(0, pattern(4096, 2));
    if (mode === 'fail') r.files[0].fsyncError = 'ETIMEDOUT';
    else r.files[0].fsyncHang = true;
    const res = await r.toolstack.removeVbd(r.paths, { timeoutMs: 10_000, destroy: false });
    assert.ok(res.closed, mode);
    assert.ok(res.waitedMs < 1500, `${mode}: took ${res.waitedMs} ms`);
    assert.ok(r.warnings.some((w) => /fsync before Closed failed/.test(w)), mode);
    if (mode === 'fail') {
      await r.device.closed; // after hold-timeout of background retries
      assert.ok(r.files[0].fsyncs >= 3, `retried: ${r.files[0].fsyncs}`);
      assert.ok(r.warnings.some((w) => /giving up on fsync/.test(w)));
    }
    r.files[0].fsyncHang = false;
    await r.close();
  }
});

test('a frontend that breaks its ring is disconnected; another device is unaffected', async () => {
  const a = await rig();
  const b = await rig({ with: a, domid: 6 });
  a.front.raw.setReqProd(a.front.raw.ring().size + 40);
  await until('A disconnected', async () => (await a.dom0.read(`${a.paths.backend}/state`)) !== '4', 3000);
  assert.match(await a.dom0.read(`${a.paths.backend}/afsfile-error`), /broke the ring/);
  assert.not.ok(a.device.stats().connected);
  const d = pattern(4096, 9);
  await b.front.write(0, d);
  assert.equal(await b.front.read(0, 4096), d);
  assert.is(await b.dom0.read(`${b.paths.backend}/state`), '4');
  await b.close();
  await a.close();
});

test('bad requests from a guest on a live device: statuses, and the device keeps going', async () => {
  const r = await rig();
  const q = r.front.raw;
  const page = q.grantPage(false);
  const base = { kind: 'rw' as const, handle: 0, indirectGrefs: [] };
  q.putRequest({ ...base, operation: BlkifOp.READ, innerOperation: 0, nrSegments: 0, id: 900n, sectorNumber: 0n, segments: [] });
  q.putRequest({ ...base, operation: BlkifOp.READ, innerOperation: 0, nrSegments: 1, id: 901n, sectorNumber: 0n, segments: [{ gref: page.gref, firstSect: 3, lastSect: 1 }] });
  q.putRequest({ ...base, operation: BlkifOp.READ, innerOperation: 0, nrSegments: 1, id: 902n, sectorNumber: BigInt(8 * 2048), segments: [{ gref: page.gref, firstSect: 0, lastSect: 7 }] });
  q.putRequest({ kind: 'unknown', operation: 4, id: 903n });
  q.putRequest({ ...base, operation: BlkifOp.READ, innerOperation: 0, nrSegments: 1, id: 904n, sectorNumber: 0n, segments: [{ gref: 12345, firstSect: 0, lastSect: 7 }] });
  q.putRequest({ ...base, operation: BlkifOp.READ, innerOperation: 0, nrSegments: 12, id: 905n, sectorNumber: 0n, segments: Array.from({ length: 11 }, () => ({ gref: page.gref, firstSect: 0, lastSect: 7 })) });
  q.putRequest({ ...base, operation: BlkifOp.INDIRECT, innerOperation: BlkifOp.READ, nrSegments: 257, id: 906n, sectorNumber: 0n, segments: [], indirectGrefs: [page.gref] });
  q.putRequest({ ...base, operation: BlkifOp.READ, innerOperation: 0, nrSegments: 1, id: 907n, sectorNumber: 0n, segments: [{ gref: page.gref, firstSect: 0, lastSect: 8 }] });
  q.push();
  await until('eight answers', () => q.unmatched().length >= 8, 3000);
  const got = q.unmatched().map((x) => [x.id, x.status]);
  assert.equal(got, [[900n, -1], [901n, -1], [902n, -1], [903n, -2], [904n, -1], [905n, -1], [906n, -1], [907n, -1]]);
  const d = pattern(4096, 4);
  await r.front.write(8, d);
  assert.equal(await r.front.read(8, 4096), d);
  await r.close();
});

test('worker restart: quiesce leaves Connected; a new worker re-attaches and replays unanswered slots', async () => {
  const r = await rig({ device: { closeDeadlineMs: 200, engine: { fsyncIntervalMs: 0 } } });
  const d = pattern(8192, 5);
  await r.front.write(16, d);
  r.files[0].readHang = true;
  const pending = r.front.read(16, 8192);
  await until('read in flight', () => (r.device.stats().engine?.inFlight ?? 0) > 0, 3000);
  await r.device.quiesce(); // gives up on the hung read after the deadline
  assert.is(await r.dom0.read(`${r.paths.backend}/state`), '4', 'SIGTERM leaves the device Connected');
  r.platform.close(); // the old worker process is gone: its ports unbind
  const platform2 = r.hv.platform();
  const dev2 = new Device(r.dom0, platform2, r.paths.backend, {
    engine: { fsyncIntervalMs: 0 },
    warn: () => undefined,
  });
  await dev2.start();
  assert.equal(await pending, d, 'the unanswered read was replayed by the new worker');
  const e = pattern(4096, 6);
  await r.front.write(100, e);
  assert.equal(await r.front.read(100, 4096), e);
  await r.front.close();
  await dev2.quiesce();
  platform2.close();
  r.hv.close();
  fs.rmSync(r.dir, { recursive: true, force: true });
});

test('quiesce is bounded even when fsync hangs; EACCES reaches the renew hook', async () => {
  const codes: string[] = [];
  const r = await rig({
    device: {
      closeDeadlineMs: 200,
      engine: { fsyncIntervalMs: 0, holdTimeoutMs: 2000, onTransientError: (c) => codes.push(c) },
    },
  });
  await r.front.write(0, pattern(4096, 1));
  r.files[0].fsyncError = 'EACCES';
  const flushing = r.front.flush();
  await until('EACCES retried', () => codes.length >= 2, 3000);
  assert.ok(codes.every((c) => c === 'EACCES'));
  r.files[0].fsyncError = undefined;
  await flushing;
  await r.front.write(8, pattern(4096, 2));
  r.files[0].fsyncHang = true;
  const t0 = Date.now();
  await r.device.quiesce();
  assert.ok(Date.now() - t0 < 1500, `quiesce took ${Date.now() - t0} ms`);
  assert.ok(r.warnings.some((w) => /fsync at quiesce did not finish/.test(w)));
  r.dispose();
});

test.run();
