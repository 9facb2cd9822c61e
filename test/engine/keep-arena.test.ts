// KeepArena (src/engine/keep-arena.ts): copies in a FIFO ring; a copy alive is never
// overwritten, whatever the order copies are let go in; no room means null, never a loss.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KeepArena } from '../../src/engine/keep-arena';

function arena(size: number) {
  const calls = { alloc: 0, released: [] as Array<[number, number]> };
  const a = new KeepArena(size, {
    alloc: (bytes) => (calls.alloc++, new Uint8Array(bytes)),
    release: (_mem, at, len) => void calls.released.push([at, len]),
  });
  return { a, calls };
}
const bytes = (n: number, v: number) => new Uint8Array(n).fill(v);

test('copies go at the tail and read back; memory is allocated on the first copy only', () => {
  const { a, calls } = arena(100);
  assert.is(calls.alloc, 0);
  const c1 = a.copy(bytes(30, 1))!;
  const c2 = a.copy(bytes(30, 2))!;
  assert.equal([c1[0], c2[0]], [0, 30]);
  assert.equal(c1[1], bytes(30, 1));
  assert.equal(c2[1], bytes(30, 2));
  assert.is(calls.alloc, 1);
  assert.is(a.copy(bytes(50, 3)), null, 'no room: 40 left at the end, none at the start');
  assert.is(a.copy(bytes(0, 3)), null);
  assert.is(a.copy(bytes(101, 3)), null);
});

test('after the oldest are let go the ring wraps, and never overwrites what is alive', () => {
  const { a } = arena(100);
  const c1 = a.copy(bytes(40, 1))!;
  const c2 = a.copy(bytes(40, 2))!;
  a.drop(); // c1 let go (an fsync covered it)
  a.advance(c2[0]);
  const c3 = a.copy(bytes(30, 3))!;
  assert.is(c3[0], 0, 'wrapped to the start');
  assert.is(a.copy(bytes(20, 4)), null, 'only 10 free before c2');
  const c4 = a.copy(bytes(10, 4))!;
  assert.is(c4[0], 30);
  assert.is(a.copy(bytes(1, 5)), null, 'full');
  assert.equal(c2[1], bytes(40, 2));
  assert.equal(c3[1], bytes(30, 3));
  assert.equal(c4[1], bytes(10, 4));
  void c1;
});

test('one let go out of order is reclaimed with the rest; none alive starts at 0 again', () => {
  const { a, calls } = arena(100);
  a.copy(bytes(40, 1));
  a.copy(bytes(40, 2));
  a.drop(); // the newer one, written again elsewhere: its room stays taken for now
  assert.is(a.copy(bytes(30, 3)), null);
  a.releaseMemory();
  assert.equal(calls.released, [], 'pages stay while a copy is alive');
  a.drop(); // the last alive
  const c = a.copy(bytes(90, 4))!;
  assert.is(c[0], 0);
  a.drop();
  a.releaseMemory();
  assert.equal(calls.released, [[0, 90]], 'what was written goes back once nothing is alive');
});

test('a steady flow: the pages of copies let go go back as head moves on, wrapped or not', () => {
  const PAGE = 4096;
  const resident = new Set<number>();
  const a = new KeepArena(1 << 20, {
    alloc: (n) => new Uint8Array(n),
    release: (_mem, at, len, busy) => {
      assert.ok(busy, 'a release behind head is a busy one (no malloc trim)');
      for (let p = Math.ceil(at / PAGE); (p + 1) * PAGE <= at + len; p++) resident.delete(p);
    },
  });
  const alive: number[] = [];
  let peak = 0;
  for (let i = 0; i < 2000; i++) {
    const c = a.copy(bytes(10_000, i & 0xff))!;
    assert.ok(c, `copy ${i}`);
    for (let p = Math.floor(c[0] / PAGE); p * PAGE < c[0] + 10_000; p++) resident.add(p);
    alive.push(c[0]);
    if (alive.length === 8) {
      // An fsync lets the oldest 6 go.
      for (let k = 0; k < 6; k++) (a.drop(), alive.shift());
      a.advance(alive[0]!);
    }
    peak = Math.max(peak, resident.size);
  }
  // At most 8 copies of 10 000 bytes alive: 20 pages, and a page at each end of the span.
  assert.ok(peak <= 24, `${peak} pages resident at most, of ${(1 << 20) / PAGE}`);
  // An fsync that lets every copy go: every page written goes back.
  while (alive.length) (a.drop(), alive.shift());
  a.emptied();
  assert.is(resident.size, 0);
});

test.run();
