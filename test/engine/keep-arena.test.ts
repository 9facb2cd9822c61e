// KeepArena (src/engine/keep-arena.ts): slots in a ring; a slot alive is never overwritten,
// whatever the order slots are let go in; no room means null, never a loss; a steady flow
// reuses the pages it has (no fresh page per write after each fsync) and gives back what it
// no longer needs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type ArenaSlot, KeepArena } from '../../src/engine/keep-arena';

const PAGE = 4096;

function arena(size: number) {
  const calls = { alloc: 0, released: [] as Array<[number, number]> };
  const a = new KeepArena(size, {
    alloc: (bytes) => (calls.alloc++, new Uint8Array(bytes)),
    release: (_mem, at, len) => void calls.released.push([at, len]),
  });
  return { a, calls };
}
const bytes = (n: number, v: number) => new Uint8Array(n).fill(v);

test('slots go at the tail and read back; memory is allocated on the first slot only', () => {
  const { a, calls } = arena(100);
  assert.is(calls.alloc, 0);
  const c1 = a.copy(bytes(30, 1))!;
  const c2 = a.copy(bytes(30, 2))!;
  assert.equal([c1.at, c2.at], [0, 30]);
  assert.equal(c1.view, bytes(30, 1));
  assert.equal(c2.view, bytes(30, 2));
  assert.is(calls.alloc, 1);
  assert.is(a.copy(bytes(50, 3)), null, 'no room: 40 left at the end, none at the start');
  assert.is(a.reserve(0), null);
  assert.is(a.reserve(101), null);
  assert.is(a.span(), 60);
});

test('after the oldest are let go the ring wraps, and never overwrites what is alive', () => {
  const { a } = arena(100);
  const c1 = a.copy(bytes(40, 1))!;
  const c2 = a.copy(bytes(40, 2))!;
  a.free(c1);
  const c3 = a.copy(bytes(30, 3))!;
  assert.is(c3.at, 0, 'wrapped to the start');
  assert.is(a.copy(bytes(20, 4)), null, 'only 10 free before c2');
  const c4 = a.copy(bytes(10, 4))!;
  assert.is(c4.at, 30);
  assert.is(a.reserve(1), null, 'full');
  assert.is(a.span(), 80, 'c2 and the wrapped c3, c4 (the unused end not counted)');
  assert.equal(c2.view, bytes(40, 2));
  assert.equal(c3.view, bytes(30, 3));
  assert.equal(c4.view, bytes(10, 4));
});

test('one let go out of order is reclaimed with the rest; the newest at once; none alive starts at 0 again', () => {
  const { a, calls } = arena(100);
  const s1 = a.copy(bytes(30, 1))!;
  const s2 = a.copy(bytes(30, 2))!;
  const s3 = a.copy(bytes(30, 3))!;
  a.free(s2); // written again elsewhere: its room stays taken while s1 is alive
  assert.is(a.reserve(20), null);
  a.free(s3); // the newest (a write that failed): s2's and its room are the tail's again
  assert.is(a.span(), 30);
  const s4 = a.reserve(60)!;
  assert.is(s4.at, 30);
  a.free(s4);
  a.releaseMemory();
  assert.equal(calls.released, [], 'pages stay while a slot is alive');
  a.free(s1); // the last alive
  assert.is(a.count, 0);
  const c = a.copy(bytes(90, 4))!;
  assert.is(c.at, 0);
  a.free(c);
  a.free(c); // twice: no harm
  a.releaseMemory();
  assert.equal(calls.released, [[0, 90]], 'what was written goes back once nothing is alive');
});

test('random reservations and frees: alive slots never overlap and keep their bytes', () => {
  const { a } = arena(64 * PAGE);
  let rnd = 12345;
  const next = (n: number) => {
    rnd = (rnd * 1103515245 + 12345) & 0x7fffffff;
    return rnd % n;
  };
  const alive: Array<{ s: ArenaSlot; v: number }> = [];
  let placed = 0;
  for (let i = 0; i < 20_000; i++) {
    if (alive.length > 0 && next(3) === 0) {
      const [x] = alive.splice(next(alive.length), 1);
      assert.equal(x.s.view, bytes(x.s.length, x.v), `slot at ${x.s.at} intact when let go`);
      a.free(x.s);
    } else {
      const n = (1 + next(8)) * 512;
      const v = i & 0xff;
      const s = a.copy(bytes(n, v));
      if (s) {
        placed++;
        for (const o of alive) assert.ok(s.at + n <= o.s.at || o.s.at + o.s.length <= s.at, `overlap at ${s.at}`);
        alive.push({ s, v });
      }
    }
    if (i % 1000 === 0) a.trim();
  }
  assert.ok(placed > 5000, `${placed} placed`);
  for (const x of alive) assert.equal(x.s.view, bytes(x.s.length, x.v));
});

/** An arena whose page faults (fresh pages touched) and resident pages are counted. */
function counted(size: number) {
  const resident = new Set<number>();
  let faults = 0;
  const a = new KeepArena(size, {
    alloc: (n) => new Uint8Array(n),
    release: (_mem, at, len) => {
      for (let p = Math.ceil(at / PAGE); (p + 1) * PAGE <= at + len; p++) resident.delete(p);
    },
  });
  const take = (n: number): ArenaSlot => {
    const s = a.reserve(n)!;
    assert.ok(s, 'room');
    for (let p = Math.floor(s.at / PAGE); p * PAGE < s.at + n; p++) {
      if (!resident.has(p)) faults++;
      resident.add(p);
    }
    return s;
  };
  return { a, resident, take, faults: () => faults };
}

test('a steady flow reuses its pages: no fresh page per write once warm', () => {
  const { a, resident, take, faults } = counted(32 << 20);
  const alive: ArenaSlot[] = [];
  let warmFaults = 0;
  for (let i = 0; i < 100_000; i++) {
    alive.push(take(PAGE));
    if (alive.length === 512) {
      // An fsync lets the oldest 500 go (12 completed while it ran).
      for (let k = 0; k < 500; k++) a.free(alive.shift()!);
      a.trim();
    }
    if (i === 60_000) warmFaults = faults();
  }
  // What an fsync leaves alive shifts where the ring wraps: the warm part grows until it holds
  // that (at most twice what is kept), then stays.
  assert.is(faults(), warmFaults, 'no page faulted in once warm');
  assert.ok(faults() <= 2 * 512 + 2, `${faults()} pages faulted in for 512 kept`);
  assert.ok(resident.size <= 2 * 512 + 2, `${resident.size} pages resident for 512 kept`);
  assert.ok(a.warmBytes <= 2 * 512 * PAGE, `warm ${a.warmBytes}`);
});

test('kept less per fsync later: the pages past what is needed now go back', () => {
  const { a, resident, take } = counted(32 << 20);
  const alive: ArenaSlot[] = [];
  const fsync = () => {
    while (alive.length) a.free(alive.shift()!);
    a.trim();
  };
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 2048; i++) alive.push(take(PAGE)); // 8 MiB between fsyncs
    fsync();
  }
  assert.ok(resident.size >= 2048, 'the 8 MiB the flow needs stay');
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 256; i++) alive.push(take(PAGE)); // then 1 MiB
    fsync();
  }
  assert.ok(resident.size <= 256 + 1, `${resident.size} pages resident for 1 MiB per fsync`);
  a.releaseMemory();
  assert.is(resident.size, 0, 'idle: everything goes back');
});

test('copies alive past the warm part are never given back by trim()', () => {
  const { a, resident, take } = counted(1 << 20);
  const old = [take(64 * PAGE)];
  a.trim(); // warm becomes 64 pages
  const s = take(8 * PAGE); // past warm
  a.free(old.pop()!);
  a.trim();
  for (let p = s.at / PAGE; p < s.at / PAGE + 8; p++) assert.ok(resident.has(p), `page ${p} of an alive slot`);
});

test.run();
