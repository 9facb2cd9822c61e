// The fd watch (src/native/fdwatch.c: uv_poll in the main loop) with a FIFO standing in for
// /dev/xen/evtchn: whole batches of u32 ports per read, end of file once, one delivery per read
// error until rearmed (no spinning). What else it must do (nothing after close, a rearm from
// inside the callback, refused fds, unref) is in fdwatch-more.test.ts. Also measures the
// latency from write() to the JS callback against a net.Socket on the same kind of fd.
import { setTimeout as sleep } from 'node:timers/promises';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native } from '../../src/native/addon';
import { tempDir } from '../helpers/exe';
import { brokenWriteEnd, fifo, percentile, u32s } from './helpers';
import { until } from '../helpers/wait';

const addon = native();
type Delivery = { bytes: number[] | null; errno: number };
const EBADF = 9;

{

  test(`ports written to the fd arrive in one delivery, in order`, async () => {
    const t = tempDir();
    const f = fifo(t.dir, 'evtchn');
    const got: Delivery[] = [];
    const h = addon.watchFd(f.rfd, (b, e) => got.push({ bytes: b && [...b], errno: e }));
    try {
      fs.writeSync(f.wfd, u32s(3, 7, 1025));
      await until('a delivery', () => got.length > 0, 2000);
      assert.equal(got[0], { bytes: [...u32s(3, 7, 1025)], errno: 0 });
      fs.writeSync(f.wfd, u32s(9));
      await until('a second delivery', () => got.length > 1, 2000);
      assert.equal(got[1].bytes, [9, 0, 0, 0]);
      // More than one read's worth: every byte arrives, in order, in page-sized reads at most.
      const many = u32s(...Array.from({ length: 1500 }, (_, i) => i));
      fs.writeSync(f.wfd, many);
      await until('every byte', () => got.slice(2).reduce((n, d) => n + (d.bytes?.length ?? 0), 0) >= many.length, 2000);
      const rest = got.slice(2);
      assert.ok(rest.every((d) => d.errno === 0 && d.bytes!.length <= 4096), 'no delivery over a page');
      assert.equal(rest.flatMap((d) => d.bytes!), [...many]);
    } finally {
      addon.watchClose(h);
      f.close();
      t.cleanup();
    }
  });

  test(`end of file is delivered once as (null, 0)`, async () => {
    const t = tempDir();
    const f = fifo(t.dir, 'evtchn');
    const got: Delivery[] = [];
    const h = addon.watchFd(f.rfd, (b, e) => got.push({ bytes: b && [...b], errno: e }));
    try {
      fs.closeSync(f.wfd);
      await until('a delivery', () => got.length > 0, 2000);
      await sleep(50);
      addon.watchRearm(h); // nothing to resume after end of file
      await sleep(50);
      assert.equal(got, [{ bytes: null, errno: 0 }]);
    } finally {
      addon.watchClose(h);
      f.close();
      t.cleanup();
    }
  });

  test(`a read error is delivered once, then the watch pauses until rearmed`, async () => {
    // Like evtchn's EFBIG the error repeats until something is done about it: a watch that kept
    // polling would call back on every turn of the loop.
    const t = tempDir();
    const b = brokenWriteEnd(t.dir);
    const got: Delivery[] = [];
    const h = addon.watchFd(b.fd, (bytes, e) => got.push({ bytes: bytes && [...bytes], errno: e }));
    try {
      await until('a delivery', () => got.length > 0, 2000);
      await sleep(100);
      assert.equal(got, [{ bytes: null, errno: EBADF }], 'exactly one delivery while paused');
      addon.watchRearm(h);
      addon.watchRearm(h); // a second rearm while already polling changes nothing
      await until('a second delivery', () => got.length > 1, 2000);
      await sleep(50);
      assert.is(got.length, 2, 'one more after one rearm');
    } finally {
      addon.watchClose(h);
      b.close();
      t.cleanup();
    }
  });
}

test(`with a buffer of its own the watch reads into it: the same array every time, its length`, async () => {
  const t = tempDir();
  const f = fifo(t.dir, 'evtchn-into');
  const into = new Uint8Array(12); // three ports per read at most
  const got: { same: boolean; length: number; bytes: number[]; errno: number }[] = [];
  const h = addon.watchFd(f.rfd, (b, e, length) => {
    got.push({ same: b === into, length, bytes: b ? [...b.subarray(0, length)] : [], errno: e });
  }, into);
  try {
    fs.writeSync(f.wfd, u32s(3, 7));
    await until('a delivery', () => got.length > 0, 2000);
    assert.equal(got[0], { same: true, length: 8, bytes: [...u32s(3, 7)], errno: 0 });
    // More than the buffer holds: reads of at most its length, every byte in order.
    fs.writeSync(f.wfd, u32s(1, 2, 3, 4, 5));
    await until('every byte', () => got.slice(1).reduce((n, d) => n + d.length, 0) >= 20, 2000);
    assert.ok(got.slice(1).every((d) => d.same && d.length <= 12), 'reads into the buffer, never over it');
    assert.equal(got.slice(1).flatMap((d) => d.bytes), [...u32s(1, 2, 3, 4, 5)]);
    fs.closeSync(f.wfd);
    await until('end of file', () => got.some((d) => !d.same), 2000);
    assert.equal(got.at(-1), { same: false, length: 0, bytes: [], errno: 0 }, 'end of file: (null, 0, 0)');
  } finally {
    addon.watchClose(h);
    f.close();
    t.cleanup();
  }
});

test(`a buffer that is not a non-empty Uint8Array is refused`, () => {
  for (const bad of [new Uint8Array(0), new Uint32Array(2), 'x', {}]) {
    assert.throws(() => addon.watchFd(0, () => {}, bad as unknown as Uint8Array), /into must be a non-empty Uint8Array/);
  }
});

interface Mechanism {
  name: string;
  arm(rfd: number, onData: () => void): () => void;
}

const mechanisms: Mechanism[] = [
  { name: 'uv_poll in the main loop (watchFd)', arm: (rfd, onData) => { const h = addon.watchFd(rfd, onData); return () => addon.watchClose(h); } },
  {
    // net.Socket on a pipe fd is uv_pipe in the main loop's epoll, plus the stream machinery.
    name: 'net.Socket (uv_pipe)',
    arm: (rfd, onData) => {
      const s = new net.Socket({ fd: rfd, readable: true, writable: false });
      s.on('data', onData);
      return () => s.destroy();
    },
  },
];

test('latency: write() → JS callback, watchFd vs a net.Socket', async () => {
  const t = tempDir();
  const port = u32s(5);
  const all = mechanisms;
  const times = new Map<string, number[]>(all.map((m) => [m.name, []]));
  try {
    // Alternating rounds: the machine is shared and noisy.
    for (let round = 0; round < 3; round++) {
      for (const m of all) {
        const f = fifo(t.dir, `${m.name.replace(/\W/g, '')}-${round}`);
        let wake: (() => void) | undefined;
        const stop = m.arm(f.rfd, () => wake?.());
        for (let i = 0; i < 700; i++) {
          let timer: NodeJS.Timeout | undefined;
          const done = new Promise<void>((resolve, reject) => {
            wake = resolve;
            timer = setTimeout(() => reject(new Error(`${m.name}: no callback within 2 s`)), 2000);
          });
          const t0 = process.hrtime.bigint();
          fs.writeSync(f.wfd, port);
          await done;
          clearTimeout(timer);
          times.get(m.name)!.push(Number(process.hrtime.bigint() - t0) / 1000);
        }
        stop();
        if (m.name.startsWith('net')) fs.closeSync(f.wfd); // the socket closed rfd
        else f.close();
      }
    }
    const fmt = (xs: number[]) => `median ${percentile(xs, 50).toFixed(1)} µs, p99 ${percentile(xs, 99).toFixed(1)} µs`;
    for (const [name, xs] of times) {
      xs.sort((a, b) => a - b);
      console.log(`  ${name}: ${fmt(xs)} (${xs.length} round trips)`);
    }
    const watch = times.get(mechanisms[0].name)!;
    // Loose bound (a shared 2-core machine): sub-millisecond, i.e. not a timer or a pool queue.
    assert.ok(percentile(watch, 50) < 1000, fmt(watch));
  } finally {
    t.cleanup();
  }
});

test.run();
