// The grant-copy pool's memory: the page allocator hands out the lowest free run (so residency
// follows what is in flight), the engine releases the pool after an idle while and never while
// anything is in flight, and the addon's lazily mapped pool really gives pages back.
import * as fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlkifOp } from '../../src/blkif/constants';
import { PagePool } from '../../src/engine/pool';
import { native } from '../../src/native/addon';
import { SimGrantTable } from '../../src/sim/grant-table';
import { MemFile, Rig, pattern, rwReq, tick } from './fixture';
import { until } from '../helpers/wait';

const PAGE = 4096;

test('PagePool: lowest free run first, freed holes refilled before higher pages', () => {
  const p = new PagePool(16 * PAGE);
  assert.is(p.alloc(2), 0);
  assert.is(p.alloc(3), 2 * PAGE);
  assert.is(p.alloc(1), 5 * PAGE);
  p.free(0, 2);
  assert.is(p.alloc(1), 0, 'the hole at 0 first');
  assert.is(p.alloc(2), 6 * PAGE, 'a run of 2 does not fit the 1-page hole at 1: next free run');
  assert.is(p.alloc(1), PAGE, 'then the 1-page hole');
  p.free(2 * PAGE, 3);
  assert.is(p.alloc(3), 2 * PAGE);
  assert.is(p.bytesInUse, 8 * PAGE);
  assert.is(p.alloc(9), -1, 'only 8 pages left');
  assert.is(p.alloc(8), 8 * PAGE);
  assert.is(p.alloc(1), -1, 'full');
  p.free(8 * PAGE, 8);
  assert.throws(() => p.free(8 * PAGE, 8), /double free/);
});

test('PagePool: a steady one-request load stays on the first pages (no walk over the pool)', () => {
  const p = new PagePool(4096 * PAGE);
  let highest = 0;
  for (let i = 0; i < 10_000; i++) {
    const a = p.alloc(32);
    const b = p.alloc(8);
    highest = Math.max(highest, a + 32 * PAGE, b + 8 * PAGE);
    p.free(a, 32);
    p.free(b, 8);
  }
  assert.is(highest, 40 * PAGE);
});

test('engine: the pool is released after the idle time, not while a request is in flight', async () => {
  const file = new MemFile(1 << 20);
  const rig = new Rig(file, { engine: { poolReleaseIdleMs: 40 } });
  await tick(100);
  assert.is(rig.grants.releases, 0, 'never used: nothing to release');
  file.hold = true;
  rig.submit(rwReq(BlkifOp.WRITE, 1n, 0n, [rig.grants.grant(pattern(1))]));
  await tick(150);
  assert.is(rig.grants.releases, 0, 'a write in flight: not released');
  file.releaseAll();
  file.hold = false;
  await rig.collect(1);
  // Polled: on a loaded host the idle timer can fire well after its 40 ms.
  await until('the idle pool released', () => rig.grants.releases >= 1);
  assert.is(rig.grants.releases, 1, 'released once after the idle time');
  await tick(100);
  assert.is(rig.grants.releases, 1, 'and not again while nothing is used');
  // Used again: data still right (the released pool reads as zero, every request fills its pages).
  const dst = rig.grants.grant();
  rig.submit(rwReq(BlkifOp.READ, 2n, 0n, [dst]));
  await rig.collect(2);
  assert.equal(rig.grants.page(dst), pattern(1));
  await until('the pool released again', () => rig.grants.releases >= 2);
  await tick(100);
  assert.is(rig.grants.releases, 2);
  rig.engine.close();
});

/** Resident KiB of the mapping that contains `address` (/proc/self/smaps). The kernel may merge
 * the pool's mapping with a neighbour, so tests compare differences, not absolute values. */
function residentKiB(address: bigint): number {
  const lines = fs.readFileSync('/proc/self/smaps', 'utf8').split('\n');
  const i = lines.findIndex((l) => {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(l);
    return m !== null && BigInt(`0x${m[1]}`) <= address && address < BigInt(`0x${m[2]}`);
  });
  assert.ok(i >= 0, 'the mapping is in smaps');
  for (let k = i + 1; k < lines.length; k++) {
    const m = /^Rss:\s+(\d+) kB/.exec(lines[k]!);
    if (m) return Number(m[1]);
  }
  throw new Error('no Rss line');
}

test('addon mapPool/releasePages: untouched pages cost nothing, touched ones come back, released read zero', () => {
  const a = native();
  const ab = a.mapPool(1024 * PAGE);
  const bytes = new Uint8Array(ab);
  const at = a.addressOf(ab);
  assert.is(Number(at % BigInt(PAGE)), 0, 'page-aligned');
  const before = residentKiB(at);
  bytes.fill(0xa5, 0, 512 * PAGE);
  assert.is(residentKiB(at) - before, 512 * 4, 'touched pages resident, nothing before');
  a.releasePages(ab, 0, 1024 * PAGE);
  assert.is(residentKiB(at), before, 'released');
  assert.ok(bytes.subarray(0, 512 * PAGE).every((x) => x === 0), 'released pages read zero');
  assert.throws(() => a.releasePages(ab, 100, PAGE), /whole pages/);
  assert.throws(() => a.releasePages(ab, 0, 1025 * PAGE), /whole pages/);
  assert.throws(() => a.mapPool(100), /multiple of the page size/);
});

test('sim grant table: the pool is lazily mapped and releasePool returns its whole pages', () => {
  const gt = new SimGrantTable(() => Promise.reject(new Error('unused')), () => undefined);
  const pool = gt.allocPool(64 * PAGE);
  const at = native().addressOf(pool.buffer as ArrayBuffer);
  const before = residentKiB(at);
  pool.fill(1);
  assert.is(residentKiB(at) - before, 64 * 4);
  gt.releasePool(pool, 100, 10 * PAGE); // pages 1..9 whole; pages 0 and 10 only partly: kept
  assert.is(pool[PAGE - 1], 1);
  assert.is(pool[PAGE], 0);
  assert.is(pool[10 * PAGE - 1], 0);
  assert.is(pool[10 * PAGE], 1);
  assert.is(residentKiB(at) - before, 55 * 4);
});

test.run();
