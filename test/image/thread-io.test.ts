// The image lock's calls run on threads of their own (src/native/thread-op.c), never on libuv's
// thread pool: with every pool thread held (opens of FIFOs nobody writes to, as an open on a
// hung file server holds its thread), taking the lock, moving it to a new open file (the rekey
// after a renewal: open, flock, F_GETLK, close) and adopting it from a predecessor (fstat,
// fstatfs) still complete, while a pool call queued behind the held threads is still waiting.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { adoptLock, lockImage, relockImage } from '../../src/image/lock';
import { fstatOnThread, getlkOnThread } from '../../src/image/thread-io';
import { processStart } from '../../src/util/proc-identity';
import { withTempDir } from '../helpers/temp';

/** Set before the pool's first use (nothing above uses it at import). */
const POOL = 2;
process.env.UV_THREADPOOL_SIZE = String(POOL);

/** Resolves to the value, or rejects after ms: every call here must answer promptly. */
function prompt<T>(what: string, p: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
    }),
  ]);
}

/** Holds every pool thread in open(2) of a FIFO with no writer; release() lets them go. */
function holdPool(dir: string): { release: () => void; queued: Promise<void> } {
  const fifos: string[] = [];
  for (let i = 0; i < POOL; i++) {
    const f = path.join(dir, `fifo${i}`);
    const r = spawnSync('mkfifo', [f]);
    assert.is(r.status, 0, 'mkfifo');
    fifos.push(f);
    fs.open(f, 'r', (_e, fd) => { if (fd !== undefined) fs.close(fd, () => undefined); });
  }
  // Queued behind them: answered only once a pool thread is free.
  const queued = new Promise<void>((r) => fs.stat(dir, () => r()));
  return {
    queued,
    release: () => {
      // A writer that opens without waiting (a reader is there) frees each held open.
      for (const f of fifos) fs.closeSync(fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
    },
  };
}

test('lock, rekey and adoption of a lock answer while every pool thread is held', () =>
  withTempDir(async (dir) => {
    const image = path.join(dir, 'disk.img');
    fs.writeFileSync(image, Buffer.alloc(1 << 16));
    const fd = fs.openSync(image, 'r+');
    const st = fs.fstatSync(fd);
    const pool = holdPool(dir);
    let queuedDone = false;
    let closed = false;
    void pool.queued.then(() => { queuedDone = true; });
    try {
      const fsMagic = Number(fs.statfsSync(dir).type);
      const s = await prompt('fstatOnThread', fstatOnThread(fd));
      assert.ok(!(s instanceof Error), `fstat: ${String(s)}`);
      if (!(s instanceof Error)) {
        assert.is(s.dev, st.dev, 'dev as fs.fstat says');
        assert.is(s.ino, st.ino, 'ino as fs.fstat says');
        assert.is(s.fsMagic, fsMagic, 'the file system magic as statfs says');
      }
      assert.is(await prompt('getlkOnThread', getlkOnThread(fd)), 0, 'F_GETLK: no POSIX lock on the file');

      const taken = await prompt('lockImage', lockImage(fd, image, true, 'warn', fsMagic));
      assert.ok(taken.ok, `locked: ${taken.ok ? '' : taken.message}`);
      if (!taken.ok) return;
      assert.is(taken.lock.status().state, 'held', `${dir} takes locks`);
      // The image's own descriptor goes first (as after a reopen): the lock's dup alone keeps
      // the locked open file, whose close releases it for the move.
      fs.closeSync(fd);
      closed = true;
      const moved = await prompt('relockImage', relockImage(taken.lock, image, true,
        { waitMs: 5000, retryMs: 50, cancelled: () => false }));
      assert.ok(moved.ok, `moved: ${moved.ok ? '' : moved.message}`);
      if (!moved.ok) return;
      assert.is(moved.lock.status().state, 'held');
      const lockFd = moved.lock.status().fd;
      assert.ok(lockFd !== null, 'a descriptor holds the moved lock');

      // This process as its own predecessor: the same open file, so the same lock.
      const adopted = await prompt('adoptLock', adoptLock(
        { pid: process.pid, pidStart: processStart(process.pid), fd: lockFd! },
        { dev: st.dev, ino: st.ino, fsMagic }, true));
      assert.ok(typeof adopted !== 'string', `adopted: ${String(adopted)}`);
      if (typeof adopted !== 'string') {
        assert.is(adopted.status().state, 'adopted');
        await new Promise<void>((r) => adopted.release(r));
      }
      const wrong = await prompt('adoptLock of another file', adoptLock(
        { pid: process.pid, pidStart: processStart(process.pid), fd: lockFd! },
        { dev: st.dev, ino: st.ino + 1 }, true));
      assert.is(wrong, `its descriptor ${lockFd} is not this image`);
      await new Promise<void>((r) => moved.lock.release(r));
      assert.not.ok(queuedDone, 'the pool was held all along (its queued call still waits)');
    } finally {
      pool.release();
      if (!closed) fs.closeSync(fd);
    }
    await prompt('the queued pool call', pool.queued);
  }));

test('fstatOnThread and getlkOnThread report a bad descriptor', async () => {
  const fd = -1;
  const s = await prompt('fstatOnThread', fstatOnThread(fd));
  assert.ok(s instanceof Error && s.code === 'EBADF', `fstat of a closed fd: ${String(s)}`);
  assert.is(await prompt('getlkOnThread', getlkOnThread(fd)), 9 /* EBADF */);
});

test.run();
