// The request engine against a test frontend on a real ring: data paths, in-order publishing,
// budget, barrier and flush ordering, bad grefs, transient errors, broken rings.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X86_32, X86_64 } from '../../src/blkif/abi';
import { writeSegment } from '../../src/blkif/codec';
import { BlkifOp, BlkifStatus } from '../../src/blkif/constants';
import { BackRing, FrontRing } from '../../src/blkif/ring';
import type { BlkifRequest } from '../../src/blkif/request';
import { LIMITS, MemFile, Rig, pattern, rwReq, tick, ticks } from './fixture';
import { DEFAULT_KEEP_BYTES } from '../../src/engine/durability';
import { PoolBudget } from '../../src/engine/pool-budget';
import { until } from '../helpers/wait';

const { READ, WRITE, FLUSH_DISKCACHE, WRITE_BARRIER, DISCARD, INDIRECT } = BlkifOp;

for (const abi of [X86_64, X86_32]) {
  test(`${abi.name}: write then read back, partial pages, several segments`, async () => {
    const file = new MemFile(1 << 20);
    const rig = new Rig(file, { abi, order: 1 });
    const src = [rig.grants.grant(pattern(1)), rig.grants.grant(pattern(2)), rig.grants.grant(pattern(3))];
    // sectors 2..7 of page 0, all of page 1, sectors 0..3 of page 2 → 6+8+4 = 18 sectors at sector 100
    const w: BlkifRequest = { ...rwReq(WRITE, 1n, 100n, []), nrSegments: 3, segments: [{ gref: src[0], firstSect: 2, lastSect: 7 }, { gref: src[1], firstSect: 0, lastSect: 7 }, { gref: src[2], firstSect: 0, lastSect: 3 }] };
    rig.submit(w);
    let rs = await rig.collect(1);
    assert.equal(rs[0], { id: 1n, operation: WRITE, status: 0 });
    const at = 100 * 512;
    assert.equal(file.data.subarray(at, at + 3072), pattern(1).subarray(1024));
    assert.equal(file.data.subarray(at + 3072, at + 3072 + 4096), pattern(2));
    assert.equal(file.data.subarray(at + 7168, at + 7168 + 2048), pattern(3).subarray(0, 2048));
    const dst = [rig.grants.grant(), rig.grants.grant()];
    rig.submit({ ...rwReq(READ, 2n, 101n, []), nrSegments: 2, segments: [{ gref: dst[0], firstSect: 1, lastSect: 7 }, { gref: dst[1], firstSect: 0, lastSect: 0 }] });
    rs = await rig.collect(2);
    assert.equal(rs[1], { id: 2n, operation: READ, status: 0 });
    assert.equal(rig.grants.page(dst[0]).subarray(512, 4096), file.data.subarray(101 * 512, 101 * 512 + 3584));
    assert.equal(rig.grants.page(dst[1]).subarray(0, 512), file.data.subarray(108 * 512, 108 * 512 + 512));
    assert.ok(rig.grants.page(dst[0]).subarray(0, 512).every((x) => x === 0), 'bytes outside the segment untouched');
    assert.ok(rig.notifies >= 2);
  });

  test(`${abi.name}: indirect write and read over several descriptor pages`, async () => {
    const file = new MemFile(8 << 20);
    const limits = { ...LIMITS, sectors: BigInt((8 << 20) / 512), maxIndirectSegments: 1024 };
    const rig = new Rig(file, { abi, limits });
    const n = 600; // two descriptor pages
    const data = Array.from({ length: n }, (_, i) => rig.grants.grant(pattern(i)));
    const descPages = [new Uint8Array(4096), new Uint8Array(4096)];
    data.forEach((g, i) => writeSegment(descPages[i >> 9], (i & 511) * 8, { gref: g, firstSect: 0, lastSect: 7 }));
    const desc = descPages.map((p) => rig.grants.grant(p));
    const ind = (op: number, id: bigint, grefs: number[]): BlkifRequest => ({ kind: 'rw', operation: INDIRECT, innerOperation: op, nrSegments: n, handle: 0, id, sectorNumber: 64n, segments: [], indirectGrefs: grefs });
    rig.submit(ind(WRITE, 10n, desc));
    const rs = await rig.collect(1);
    // Answered with the indirect_op, as Linux blkback does and Linux blkfront checks.
    assert.equal(rs[0], { id: 10n, operation: WRITE, status: 0 });
    assert.equal(file.data.subarray(64 * 512 + 599 * 4096, 64 * 512 + 600 * 4096), pattern(599));
    // Read it back into fresh pages.
    const back = Array.from({ length: n }, () => rig.grants.grant());
    const descB = [new Uint8Array(4096), new Uint8Array(4096)];
    back.forEach((g, i) => writeSegment(descB[i >> 9], (i & 511) * 8, { gref: g, firstSect: 0, lastSect: 7 }));
    rig.submit(ind(READ, 11n, descB.map((p) => rig.grants.grant(p))));
    await rig.collect(2);
    assert.is(rig.responses[1].status, 0);
    assert.is(rig.responses[1].operation, READ);
    for (const i of [0, 511, 512, 599]) assert.equal(rig.grants.page(back[i]), pattern(i), `segment ${i}`);
  });
}

test('indirect with a bad descriptor (first > last) or a bad descriptor gref fails only itself', async () => {
  const file = new MemFile(1 << 20);
  const rig = new Rig(file);
  const page = new Uint8Array(4096);
  writeSegment(page, 0, { gref: rig.grants.grant(), firstSect: 5, lastSect: 2 });
  const good = rig.grants.grant(pattern(9));
  rig.submit(
    { kind: 'rw', operation: INDIRECT, innerOperation: WRITE, nrSegments: 1, handle: 0, id: 1n, sectorNumber: 0n, segments: [], indirectGrefs: [rig.grants.grant(page)] },
    { kind: 'rw', operation: INDIRECT, innerOperation: READ, nrSegments: 1, handle: 0, id: 2n, sectorNumber: 0n, segments: [], indirectGrefs: [99999] },
    rwReq(WRITE, 3n, 0n, [good]),
  );
  const rs = await rig.collect(3);
  assert.equal(rs.map((r) => [r.id, r.status]), [[1n, -1], [2n, -1], [3n, 0]]);
  assert.equal(file.data.subarray(0, 4096), pattern(9));
});

test('responses are published in ring order when I/O completes in reverse', async () => {
  const file = new MemFile(1 << 20);
  file.hold = true;
  const rig = new Rig(file);
  const pages = Array.from({ length: 5 }, () => rig.grants.grant());
  for (let i = 0; i < 5; i++) rig.submit(rwReq(READ, BigInt(100 + i), BigInt(8 * i), [pages[i]]));
  await ticks(3);
  assert.is(file.pending.length, 5, 'all five run concurrently');
  for (let k = 4; k >= 1; k--) {
    file.release(file.pending.length - 1); // the newest first
    await ticks(3);
    assert.is(rig.front.unconsumedResponses(), 0, `nothing published while slot 0 is unanswered (released ${k})`);
  }
  const slot1 = rig.front.slotBytes(1).slice();
  file.release(0);
  const rs = await rig.collect(5);
  assert.equal(rs.map((r) => r.id), [100n, 101n, 102n, 103n, 104n]);
  assert.ok(rs.every((r) => r.status === 0));
  // The response for request 101 went into 101's slot (slot 1), and only bytes 0-11 changed.
  const now = rig.front.slotBytes(1);
  assert.is(new DataView(now.buffer, now.byteOffset).getBigUint64(0, true), 101n);
  for (let i = 0; i < now.length; i++) if (i > 11 || i === 9) assert.is(now[i], slot1[i], `slot byte ${i}`);
  assert.is(rig.notifies, 1, 'one notification for the five responses');
});

test('a flood never exceeds 32 requests / 16 MiB in flight; the ring is the queue', async () => {
  const file = new MemFile(64 << 20);
  file.hold = true;
  const limits = { ...LIMITS, sectors: BigInt((64 << 20) / 512) };
  // Nothing kept: the writes' data goes to the pool, not to the kept-data arena (tested below).
  const rig = new Rig(file, { order: 4, limits, engine: { keepBytes: 0 } });
  const pagesPer = 256; // 1 MiB indirect requests: the byte budget binds first (16 of them)
  const data = Array.from({ length: pagesPer }, () => rig.grants.grant());
  const desc = new Uint8Array(4096);
  data.forEach((g, i) => writeSegment(desc, i * 8, { gref: g, firstSect: 0, lastSect: 7 }));
  const dg = rig.grants.grant(desc);
  for (let i = 0; i < 40; i++) rig.submit({ kind: 'rw', operation: INDIRECT, innerOperation: WRITE, nrSegments: pagesPer, handle: 0, id: BigInt(i), sectorNumber: BigInt(i * 2048), segments: [], indirectGrefs: [dg] });
  // And small requests behind them: the request budget binds (32).
  const small = rig.grants.grant();
  for (let i = 0; i < 400; i++) rig.submit(rwReq(READ, BigInt(1000 + i), BigInt(i * 8), [small]));
  let answered = 0;
  let maxPending = 0;
  while (answered < 440) {
    await ticks(2);
    const st = rig.engine.stats();
    assert.ok(st.inFlight <= 32, `in flight ${st.inFlight}`);
    assert.ok(st.inFlightBytes <= 16 << 20, `bytes ${st.inFlightBytes}`);
    maxPending = Math.max(maxPending, file.pending.length);
    if (file.pending.length) file.release(0);
    while (rig.front.unconsumedResponses() > 0) (rig.front.takeResponse(), answered++);
    rig.front.finalCheckForResponses();
  }
  const st = rig.engine.stats();
  assert.is(st.peakInFlightBytes, 16 << 20, 'the byte budget was used fully');
  assert.is(st.peakInFlight, 32, 'the request budget was used fully');
  assert.ok(maxPending <= 32);
  // The data and indirect pool, once.
  const once = (16 << 20) + 32 * 8 * 4096;
  assert.is(rig.grants.poolBytes, once, 'one pool, allocated once');
  assert.is(st.requests.write, 40);
  assert.is(st.requests.read, 400);
  // Budget stalls (blkback's oo_req): the 408 requests beyond the first 32 waited in the ring for
  // a slot, each counted once however many pumps it waited; of the 40 1 MiB writes, the 24 beyond
  // the 16 that fit waited for buffer memory (and small reads taken behind them, FIFO, too).
  assert.is(st.stalls.slot, 408);
  assert.ok(st.stalls.memory >= 24 && st.stalls.memory < 440 - 16, `memory stalls ${st.stalls.memory}`);
  assert.is(st.held, 0);
});

test('writes are copied straight into the kept-data arena: no pool memory; a failed one lets its room go', async () => {
  const keepBudget = new PoolBudget(64 << 20);
  const file = new MemFile(1 << 20);
  file.hold = true;
  const rig = new Rig(file, { engine: { keepBudget } });
  for (let i = 0; i < 4; i++) rig.submit(rwReq(WRITE, BigInt(i), BigInt(i * 8), [rig.grants.grant(pattern(10 + i))]));
  // And one whose data cannot be copied (a gref never granted): answered with an error at once.
  rig.submit(rwReq(WRITE, 4n, 64n, [4242]));
  await ticks(4);
  let st = rig.engine.stats();
  assert.is(file.pending.length, 4);
  assert.is(st.inFlightBytes, 0, 'no pool memory for the writes');
  assert.is(keepBudget.bytesInUse, 4 * 4096, 'their room in the arena is charged while in flight');
  file.failNext('write', 'EROFS'); // the first write fails for good
  file.releaseAll();
  const rs = await rig.collect(5);
  assert.equal(rs.map((r) => r.status), [0, 0, 0, 0, 0].map((_, i) => (i === 0 || i === 4 ? BlkifStatus.ERROR : 0)));
  st = rig.engine.stats();
  assert.is(st.keptBytes, 3 * 4096, 'the three written are kept');
  assert.is(keepBudget.bytesInUse, 3 * 4096, 'the failed write\'s room went back');
  for (let i = 1; i < 4; i++) assert.equal(file.data.subarray(i * 4096, (i + 1) * 4096), pattern(10 + i));
  // A read sees what was written (the kept copy laid over the file is the same data).
  file.hold = false;
  const g = rig.grants.grant();
  rig.submit(rwReq(READ, 9n, 16n, [g]));
  const [r] = (await rig.collect(6)).slice(5);
  assert.is(r.status, 0);
  assert.equal(rig.grants.page(g), pattern(12));
  rig.submit(rwReq(FLUSH_DISKCACHE, 10n, 0n, []));
  assert.is((await rig.collect(7))[6].status, 0);
  assert.is(rig.engine.stats().keptBytes, 0);
  assert.is(keepBudget.bytesInUse, 0);
  assert.is(rig.grants.poolBytes, (16 << 20) + 32 * 8 * 4096 + DEFAULT_KEEP_BYTES, 'one pool and one arena');
  rig.engine.close();
});

test('keepInPlace false (AFSFILE_KEEP=copy): write data in the pool, copied to be kept when done', async () => {
  const file = new MemFile(1 << 20);
  file.hold = true;
  const rig = new Rig(file, { engine: { keepInPlace: false } });
  for (let i = 0; i < 2; i++) rig.submit(rwReq(WRITE, BigInt(i), BigInt(i * 8), [rig.grants.grant(pattern(20 + i))]));
  await ticks(4);
  assert.is(rig.engine.stats().inFlightBytes, 2 * 4096, 'the pool holds the data in flight');
  file.releaseAll();
  assert.equal((await rig.collect(2)).map((r) => r.status), [0, 0]);
  assert.is(rig.engine.stats().keptBytes, 2 * 4096);
  file.hold = false;
  const g = rig.grants.grant();
  rig.submit(rwReq(READ, 5n, 8n, [g]));
  assert.is((await rig.collect(3))[2].status, 0);
  assert.equal(rig.grants.page(g), pattern(21));
  rig.engine.close();
});

test('devices sharing a process budget hold no more than it together; each finishes', async () => {
  // Three devices, each allowed 16 MiB, in one process whose budget is 4 MiB: 1 MiB writes.
  const budget = new PoolBudget(4 << 20);
  const limits = { ...LIMITS, sectors: BigInt((16 << 20) / 512) };
  const rigs = [0, 1, 2].map(() => {
    const file = new MemFile(16 << 20);
    file.hold = true;
    return new Rig(file, { order: 4, limits, engine: { budget, keepBytes: 0 } });
  });
  for (const rig of rigs) {
    const desc = new Uint8Array(4096);
    for (let i = 0; i < 256; i++) writeSegment(desc, i * 8, { gref: rig.grants.grant(), firstSect: 0, lastSect: 7 });
    const dg = rig.grants.grant(desc);
    for (let i = 0; i < 6; i++) {
      rig.submit({ kind: 'rw', operation: INDIRECT, innerOperation: WRITE, nrSegments: 256, handle: 0, id: BigInt(i),
        sectorNumber: BigInt(i * 2048), segments: [], indirectGrefs: [dg] });
    }
  }
  let answered = 0;
  let peak = 0;
  for (let round = 0; answered < 18 && round < 5000; round++) {
    await ticks(2);
    const total = rigs.reduce((a, r) => a + r.engine.stats().inFlightBytes, 0);
    assert.ok(total <= 4 << 20, `${total} bytes in flight together`);
    assert.is(budget.bytesInUse, total);
    peak = Math.max(peak, total);
    // Complete the I/O of one device at a time, round robin, so all must take turns.
    const r = rigs[round % 3]!;
    if ((r.file as MemFile).pending.length) (r.file as MemFile).release(0);
    for (const x of rigs) {
      while (x.front.unconsumedResponses() > 0) (x.responses.push(x.front.takeResponse()), answered++);
      x.front.finalCheckForResponses();
    }
  }
  assert.is(answered, 18, 'every request of every device was answered');
  assert.is(peak, 4 << 20, 'the budget was used fully');
  assert.ok(rigs.every((r) => r.responses.every((x) => x.status === 0)));
  assert.ok(rigs.reduce((a, r) => a + r.engine.stats().stalls.memory, 0) > 0, 'waits counted as memory stalls');
  assert.is(budget.bytesInUse, 0);
});

test('no stalls while the budget suffices; a request in a transient retry counts as held', async () => {
  const file = new MemFile(1 << 20);
  const codes: string[] = [];
  const rig = new Rig(file, { engine: { holdTimeoutMs: 10_000, onTransientError: (c) => codes.push(c) } });
  const g = rig.grants.grant(pattern(4));
  for (let i = 0; i < 8; i++) rig.submit(rwReq(READ, BigInt(i), 0n, [g]));
  await rig.collect(8);
  assert.equal(rig.engine.stats().stalls, { slot: 0, memory: 0 });
  file.failNext('write', 'ETIMEDOUT', 1);
  rig.submit(rwReq(WRITE, 9n, 0n, [g]));
  for (let k = 0; k < 200 && codes.length === 0; k++) await tick(5);
  assert.equal(codes, ['ETIMEDOUT']);
  assert.is(rig.engine.stats().held, 1, 'held while it waits for its retry');
  await rig.collect(9, 5000);
  assert.is(rig.responses[8].status, 0);
  assert.is(rig.engine.stats().held, 0);
  assert.ok(rig.engine.stats().latencySumMs > 0);
});

test('barrier: earlier writes complete first, later ones wait for it', async () => {
  const file = new MemFile(1 << 20);
  file.hold = true;
  const rig = new Rig(file);
  const g = rig.grants.grant(pattern(1));
  rig.submit(rwReq(WRITE, 1n, 0n, [g]), rwReq(WRITE, 2n, 8n, [g]), rwReq(WRITE_BARRIER, 3n, 16n, [g]), rwReq(WRITE, 4n, 24n, [g]), rwReq(READ, 5n, 0n, [rig.grants.grant()]));
  await ticks(3);
  assert.equal(file.log, ['write@0', 'write@4096'], 'barrier and later requests wait');
  file.release(1);
  await ticks(3);
  assert.equal(file.log, ['write@0', 'write@4096']);
  file.release(0);
  await ticks(3);
  assert.equal(file.log.slice(2), ['fsync'], 'barrier: fsync of earlier writes first');
  file.release(0);
  await ticks(3);
  assert.equal(file.log.slice(3), ['write@8192']);
  file.release(0);
  await ticks(3);
  assert.equal(file.log.slice(4), ['fsync'], 'then its own data made durable');
  file.release(0);
  await ticks(3);
  assert.equal(file.log.slice(5).sort(), ['read@0', 'write@12288'], 'later ones start only now');
  file.releaseAll();
  const rs = await rig.collect(5);
  assert.equal(rs.map((r) => [r.id, r.status]), [[1n, 0], [2n, 0], [3n, 0], [4n, 0], [5n, 0]]);
});

test('flush: waits for earlier writes, then fsync; flush with data = fsync then write', async () => {
  const file = new MemFile(1 << 20);
  file.hold = true;
  const rig = new Rig(file);
  const g = rig.grants.grant(pattern(4));
  rig.submit(rwReq(WRITE, 1n, 0n, [g]), rwReq(FLUSH_DISKCACHE, 2n, 0n, []), rwReq(READ, 3n, 0n, [rig.grants.grant()]));
  await ticks(3);
  assert.equal(file.log.sort(), ['read@0', 'write@0'], 'the flush waits; reads need not');
  file.releaseAll();
  await ticks(3);
  assert.ok(file.log.includes('fsync'));
  file.releaseAll();
  await rig.collect(3);
  assert.is(file.fsyncs, 1);
  assert.equal(rig.responses.map((r) => r.status), [0, 0, 0]);
  file.log.length = 0;
  rig.submit(rwReq(FLUSH_DISKCACHE, 4n, 40n, [g]));
  await ticks(3);
  assert.equal(file.log, ['fsync']);
  file.release(0);
  await ticks(3);
  assert.equal(file.log, ['fsync', 'write@20480']);
  file.release(0);
  await rig.collect(4);
  assert.is(rig.responses[3].status, 0);
  assert.equal(file.data.subarray(20480, 24576), pattern(4));
});

test('discard: passed to the file; refused with EOPNOTSUPP when not advertised', async () => {
  const file = new MemFile(1 << 20);
  const rig = new Rig(file);
  const d = (id: bigint): BlkifRequest => ({ kind: 'discard', operation: DISCARD, flag: 0, handle: 0, id, sectorNumber: 8n, nrSectors: 16n });
  rig.submit(d(1n));
  await rig.collect(1);
  assert.equal(file.discards, [[4096, 8192]]);
  assert.is(rig.responses[0].status, 0);
  const rig2 = new Rig(file, { limits: { ...LIMITS, discard: false } });
  rig2.submit(d(2n));
  const rs = await rig2.collect(1);
  assert.equal(rs[0], { id: 2n, operation: DISCARD, status: BlkifStatus.EOPNOTSUPP });
  assert.is(file.discards.length, 1);
});

test('bad gref: only that request fails, the rest of the batch goes through', async () => {
  const file = new MemFile(1 << 20);
  const rig = new Rig(file);
  const ok = rig.grants.grant(pattern(5));
  const ro = rig.grants.grant(new Uint8Array(4096), true);
  rig.submit(rwReq(WRITE, 1n, 0n, [ok]), rwReq(WRITE, 2n, 8n, [ok, 424242]), rwReq(WRITE, 3n, 16n, [ok]), rwReq(READ, 4n, 0n, [ro]), rwReq(READ, 5n, 0n, [rig.grants.grant()]));
  const rs = await rig.collect(5);
  assert.equal(rs.map((r) => [r.id, r.status]), [[1n, 0], [2n, -1], [3n, 0], [4n, -1], [5n, 0]]);
  assert.equal(file.data.subarray(8192, 12288), pattern(5));
  assert.ok(file.data.subarray(4096, 8192).every((x) => x === 0), 'the failed write wrote nothing');
  assert.is(rig.engine.stats().errors, 2);
});

test('bad requests answered with the right status, the device keeps running', async () => {
  const rig = new Rig(new MemFile(1 << 20));
  const g = rig.grants.grant();
  rig.submit(
    { kind: 'unknown', operation: 4, id: 1n },
    rwReq(READ, 2n, 0n, [], 0, 7),
    { ...rwReq(READ, 3n, 0n, [g]), nrSegments: 12 },
    rwReq(READ, 4n, 0n, [g], 6, 2),
    rwReq(READ, 5n, 2047n, [g]),
    rwReq(READ, 6n, 0n, [g]),
  );
  const rs = await rig.collect(6);
  assert.equal(rs.map((r) => r.status), [-2, -1, -1, -1, -1, 0]);
  assert.equal(rs.map((r) => r.operation), [4, 0, 0, 0, 0, 0]);
});

test('a zero-length DISCARD is answered OK and never reaches the file', async () => {
  const file = new MemFile(1 << 20);
  const rig = new Rig(file);
  rig.submit({ kind: 'discard', operation: DISCARD, flag: 0, handle: 0, id: 1n, sectorNumber: 8n, nrSectors: 0n });
  const rs = await rig.collect(1);
  assert.equal(rs[0], { id: 1n, operation: DISCARD, status: BlkifStatus.OKAY });
  assert.equal(file.discards, [], 'no fallocate of length 0');
  rig.engine.close();
});

test('read-only device: writes fail, reads work', async () => {
  const file = new MemFile(1 << 20, true);
  const rig = new Rig(file, { limits: { ...LIMITS, readOnly: true } });
  const g = rig.grants.grant(pattern(1));
  rig.submit(rwReq(WRITE, 1n, 0n, [g]), rwReq(READ, 2n, 0n, [g]));
  const rs = await rig.collect(2);
  assert.equal(rs.map((r) => r.status), [-1, 0]);
  assert.ok(file.data.every((x) => x === 0));
});

test('transient errors are retried (hook called), then succeed; persistent ones fail after hold-timeout', async () => {
  const file = new MemFile(1 << 20);
  const codes: string[] = [];
  const rig = new Rig(file, { engine: { holdTimeoutMs: 300, onTransientError: (c) => codes.push(c) } });
  const g = rig.grants.grant(pattern(2));
  file.failNext('write', 'EACCES', 2);
  rig.submit(rwReq(WRITE, 1n, 0n, [g]));
  const rs = await rig.collect(1);
  assert.is(rs[0].status, 0);
  assert.equal(codes, ['EACCES', 'EACCES']);
  assert.equal(file.data.subarray(0, 4096), pattern(2));
  file.failNext('fsync', 'ETIMEDOUT', 1000);
  const t0 = Date.now();
  rig.submit(rwReq(FLUSH_DISKCACHE, 2n, 0n, []));
  await rig.collect(2, 3000);
  assert.is(rig.responses[1].status, -1);
  assert.ok(Date.now() - t0 >= 250, 'held until hold-timeout');
  file.failNext('read', 'EINVAL', 1);
  rig.submit(rwReq(READ, 3n, 0n, [g]));
  await rig.collect(3);
  assert.is(rig.responses[2].status, -1, 'non-transient fails at once');
  assert.ok(rig.engine.stats().retries >= 3);
});

test('a request held past hold-timeout fails with why: the hold and the error\'s own message', async () => {
  const file = new MemFile(1 << 20);
  const warnings: string[] = [];
  const rig = new Rig(file, { engine: { holdTimeoutMs: 200, warn: (m) => warnings.push(m) } });
  const g = rig.grants.grant(pattern(4));
  file.failNext('write', 'EKEYEXPIRED', 1000);
  rig.submit(rwReq(WRITE, 1n, 0n, [g]));
  const rs = await rig.collect(1, 3000);
  assert.is(rs[0].status, -1);
  const why = /write failed after \d+ s held \(hold-timeout\): EKEYEXPIRED \(write: EKEYEXPIRED\)/;
  assert.match(warnings.join('\n'), why);
  file.failNext('read', 'EINVAL', 1);
  rig.submit(rwReq(READ, 2n, 0n, [g]));
  await rig.collect(2);
  assert.match(warnings.at(-1) ?? '', /read failed: EINVAL \(read: EINVAL\)$/, 'not held: no hold in the reason');
});

test('req_prod more than a ring ahead: that ring is disconnected, others keep working', async () => {
  const file = new MemFile(1 << 20);
  const a = new Rig(file);
  const b = new Rig(file, { engineInstance: a.engine, grants: a.grants });
  const g = a.grants.grant(pattern(3));
  a.front.setReqProd(a.front.size + 5);
  a.engine.kick();
  b.submit(rwReq(WRITE, 1n, 0n, [g]));
  await b.collect(1);
  assert.match(a.broken ?? '', /more than 32 ahead/);
  assert.is(b.responses[0].status, 0);
  assert.is(a.front.rspProd, 0, 'nothing written to the broken ring');
  b.submit(rwReq(READ, 2n, 0n, [a.grants.grant()]));
  await b.collect(2);
  assert.is(b.responses[1].status, 0);
});

test('two queues share one budget', async () => {
  const file = new MemFile(1 << 20);
  file.hold = true;
  const a = new Rig(file, { engine: { maxRequests: 4 } });
  const b = new Rig(file, { engineInstance: a.engine, grants: a.grants });
  const g = a.grants.grant();
  for (let i = 0; i < 6; i++) a.submit(rwReq(READ, BigInt(i), 0n, [g]));
  for (let i = 0; i < 6; i++) b.submit(rwReq(READ, BigInt(10 + i), 0n, [g]));
  for (let k = 0; k < 30 && a.responses.length + b.responses.length < 12; k++) {
    await ticks(2);
    assert.ok(file.pending.length <= 4 && a.engine.inFlight <= 4);
    if (file.pending.length) file.release(0);
    await a.collect(0);
    await b.collect(0);
  }
  assert.is(a.responses.length, 6);
  assert.is(b.responses.length, 6);
});

test('two queues, one slot, I/O done inline: the ring that found no slot is served next', async () => {
  const file = new MemFile(1 << 20);
  file.inline = true;
  const a = new Rig(file, { engine: { maxRequests: 1 } });
  const b = new Rig(file, { engineInstance: a.engine, grants: a.grants });
  a.submit(rwReq(WRITE, 1n, 0n, [a.grants.grant(pattern(1))]));
  b.submit(rwReq(WRITE, 2n, 8n, [a.grants.grant(pattern(2))]));
  // One kick each, both before the first pump: whichever ring is served first, the other's
  // request waits for the slot, with no event to come for it.
  for (let k = 0; k < 20 && a.responses.length + b.responses.length < 2; k++) {
    await ticks(2);
    await a.collect(0);
    await b.collect(0);
  }
  assert.is(a.responses.length, 1);
  assert.is(b.responses.length, 1);
  assert.equal(file.data.subarray(4096, 8192), pattern(2));
});

test('periodic fsync while dirty, none while clean; drain waits for in-flight', async () => {
  const file = new MemFile(1 << 20);
  const rig = new Rig(file, { engine: { fsyncIntervalMs: 20 } });
  await tick(70);
  assert.is(file.fsyncs, 0, 'clean: no fsync');
  rig.submit(rwReq(WRITE, 1n, 0n, [rig.grants.grant()]));
  await rig.collect(1);
  assert.ok(rig.engine.dirty);
  // Polled, not one fixed wait: on a loaded host the 20 ms timer can fire much later.
  await until('the periodic fsync of the dirty image', () => file.fsyncs >= 1 && !rig.engine.dirty);
  await tick(70);
  assert.is(file.fsyncs, 1, 'one fsync, then clean');
  assert.not.ok(rig.engine.dirty);
  file.hold = true;
  rig.submit(rwReq(WRITE, 2n, 0n, [rig.grants.grant()]));
  await ticks(3);
  let drained = false;
  const p = rig.engine.drain().then(() => (drained = true));
  await ticks(3);
  assert.not.ok(drained);
  file.releaseAll();
  await p;
  assert.is(rig.front.rspProd, 2);
  rig.submit(rwReq(READ, 3n, 0n, [rig.grants.grant()]));
  await ticks(5);
  // The periodic fsync may legitimately start here (write 2 made the image dirty); what must
  // not start while drained is the new request.
  assert.is(file.pending.filter((op) => op.kind !== 'fsync').length, 0, 'nothing taken while drained');
  file.hold = false;
  file.releaseAll(); // a periodic fsync held above
  rig.engine.resume();
  await rig.collect(3);
  await rig.engine.flush();
  assert.not.ok(rig.engine.dirty);
  rig.engine.close();
});

test('ring indexes near 2^32: the engine serves across the wrap, in order', async () => {
  const file = new MemFile(1 << 20);
  const rig = new Rig(file);
  // A second ring on the same engine whose indexes start at 2^32 - 7.
  const mem = new ArrayBuffer(4096);
  const h = new Uint32Array(mem, 0, 4);
  const start = 0xfffffff9;
  h[0] = start; h[1] = start + 1; h[2] = start; h[3] = start + 1;
  const front = new FrontRing(mem, X86_64, { init: false });
  let notified = 0;
  rig.engine.addQueue(new BackRing(mem, X86_64), 1, { notify: () => notified++, broken: () => assert.unreachable('broken') });
  const g = rig.grants.grant(pattern(8));
  let got = 0;
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 10; i++) front.putRequest(rwReq(i % 2 ? READ : WRITE, BigInt(round * 10 + i), BigInt(i * 8), [g]));
    if (front.pushRequests()) rig.engine.kick();
    for (let k = 0; k < 100 && got < (round + 1) * 10; k++) {
      await tick();
      while (front.unconsumedResponses() > 0) {
        const r = front.takeResponse();
        assert.is(r.id, BigInt(got++));
        assert.is(r.status, 0);
      }
      front.finalCheckForResponses();
    }
  }
  assert.is(got, 30);
  assert.is(h[2], (start + 30) >>> 0, 'rsp_prod wrapped');
  assert.ok(notified >= 1);
});

test('one grant-copy batch per drain: all write data in, all finished reads out', async () => {
  const file = new MemFile(1 << 20);
  file.hold = true;
  const rig = new Rig(file);
  const src = Array.from({ length: 10 }, (_, i) => rig.grants.grant(pattern(i)));
  const b0 = rig.grants.batches;
  rig.submit(...src.map((g, i) => rwReq(WRITE, BigInt(i), BigInt(i * 8), [g, g])));
  await ticks(3);
  assert.is(rig.grants.batches - b0, 1, 'ten writes, one copy in');
  assert.is(file.pending.length, 10);
  file.releaseAll();
  await rig.collect(10);
  const dst = Array.from({ length: 10 }, () => rig.grants.grant());
  rig.submit(...dst.map((g, i) => rwReq(READ, BigInt(100 + i), BigInt(i * 8), [g])));
  await ticks(3);
  const b1 = rig.grants.batches;
  file.releaseAll();
  await rig.collect(20);
  assert.is(rig.grants.batches - b1, 1, 'ten reads, one copy out');
  for (let i = 0; i < 10; i++) assert.equal(rig.grants.page(dst[i]), pattern(i));
});

test.run();
