// Moving the image lock to a new open file (relockImage) tries without waiting for a moment, then
// waits in flock on a thread of its own: on kAFS only a waiting flock asks the file server for a
// lock whose release failed (src/image/lock.ts). That waiting flock must end when the device goes
// away or the wait is over, and leave nothing behind that could take the lock later. Real flock
// on a local file; the other host is another process (util-linux flock).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lockImage, relockImage, type ImageLock, type RelockWait } from '../../src/image/lock';
import { flockWaitOnThread } from '../../src/image/thread-io';
import { native } from '../../src/native/addon';
import { withTempDir } from '../helpers/temp';
import { until } from '../helpers/wait';

const { EINTR } = os.constants.errno;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The threads of this process (a waiting flock's thread must be gone once it answered). */
function threads(): number {
  return fs.readdirSync('/proc/self/task').length;
}

/** Another process (the other host) holding an exclusive lock on `file` until killed; resolves
 * once it holds it. */
async function otherHost(file: string): Promise<ChildProcess> {
  const p = spawn('flock', ['--exclusive', '--close', file, 'sh', '-c', 'echo locked; exec sleep 60'],
    { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
  let out = '';
  p.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  await until('the other host to hold the lock', () => out.includes('locked'), 10_000);
  return p;
}

/** Ends p and, for the other host (a group of its own), its command too (by the group's id). */
function end(p: ChildProcess): Promise<void> {
  const group = () => { try { process.kill(-p.pid!); } catch { /* gone, or not a group leader */ } };
  if (p.exitCode !== null || p.signalCode !== null) { group(); return Promise.resolve(); }
  return new Promise((r) => { p.once('exit', () => { group(); r(); }); p.kill(); });
}

/** Whether another process gets an exclusive lock on `file` now (it ends it at once). */
function othersLock(file: string): boolean {
  return spawnSync('flock', ['--nonblock', '--exclusive', file, 'true']).status === 0;
}

/** An image with its lock held through a dup, as lockImage leaves it; the image's own fd closed
 * (as after a reopen): the lock's dup alone keeps the locked open file. */
async function locked(dir: string): Promise<{ file: string; lock: ImageLock }> {
  const file = path.join(dir, 'disk.img');
  fs.writeFileSync(file, Buffer.alloc(1 << 16));
  const fd = fs.openSync(file, 'r+');
  const r = await lockImage(fd, file, true, 'refuse');
  fs.closeSync(fd);
  if (!r.ok) throw new Error(r.message);
  return { file, lock: r.lock };
}

// libuv's pool threads start with its first use: started now, so that counting threads later
// sees only the waiting flocks' own.
test.before(async () => { await Promise.all([1, 2, 3, 4].map(() => fs.promises.stat('/'))); });

test('a waiting flock is granted when the holder ends, and can be given up', () =>
  withTempDir(async (dir) => {
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, 'x');
    const addon = native();
    const holder = await otherHost(file);
    const fd = fs.openSync(file, 'r');
    try {
      const before = threads();
      const w = flockWaitOnThread(fd, addon.LOCK_EX);
      await sleep(300);
      let answered = false;
      void w.done.then(() => { answered = true; });
      await sleep(50);
      assert.not.ok(answered, 'it waits while the other process holds the lock');
      const t0 = Date.now();
      w.cancel();
      w.cancel(); // twice: harmless
      assert.is(await w.done, EINTR, 'given up: EINTR');
      assert.ok(Date.now() - t0 < 2000, `the cancel ended it at once (${Date.now() - t0} ms)`);
      await until('its thread to end', () => threads() <= before, 5000);

      // Cancelled before its thread could even start: answered too.
      const early = flockWaitOnThread(fd, addon.LOCK_EX);
      early.cancel();
      assert.is(await early.done, EINTR, 'given up before it began');

      // A new one is granted once the holder goes.
      const w2 = flockWaitOnThread(fd, addon.LOCK_EX);
      await sleep(200);
      const t1 = Date.now();
      await end(holder);
      assert.is(await w2.done, 0, 'granted');
      assert.ok(Date.now() - t1 < 3000, `granted soon after the holder ended (${Date.now() - t1} ms)`);
      w2.cancel(); // after the answer: nothing to give up, the lock stays
      await sleep(100);
      assert.not.ok(othersLock(file), 'this process holds it now');
      assert.throws(() => flockWaitOnThread(fd, addon.LOCK_EX | addon.LOCK_NB), /must wait/);
    } finally {
      await end(holder);
      fs.closeSync(fd);
    }
    assert.ok(othersLock(file), 'released with the close');
  }));

test('relockImage: free at once, it never waits in flock', () =>
  withTempDir(async (dir) => {
    const { file, lock } = await locked(dir);
    const moved = await relockImage(lock, file, true, { waitMs: 5000, retryMs: 50, cancelled: () => false });
    assert.ok(moved.ok, moved.ok ? '' : moved.message);
    if (!moved.ok) return;
    assert.match(moved.lock.status().note ?? '', /^taken again with the renewed key after \d+ ms$/);
    assert.not.ok(othersLock(file), 'held');
    await new Promise<void>((r) => moved.lock.release(r));
    assert.ok(othersLock(file), 'ended with its close');
  }));

/** A process that keeps the open file of `fd` (and so its lock) until killed: the old lock
 * standing after its release, as on the file server when the release could not reach it. */
function keeper(fd: number): ChildProcess {
  return spawn('sleep', ['60'], { stdio: ['ignore', 'ignore', 'ignore', fd] });
}

test('relockImage: still held past its tries without waiting, taken as soon as it ends', () =>
  withTempDir(async (dir) => {
    const { file, lock } = await locked(dir);
    const k = keeper(lock.status().fd!);
    try {
      await sleep(100);
      setTimeout(() => k.kill(), 1500);
      const t0 = Date.now();
      const moved = await relockImage(lock, file, true,
        { waitMs: 10_000, retryMs: 50, quickMs: 300, cancelled: () => false });
      const ms = Date.now() - t0;
      assert.ok(moved.ok, moved.ok ? '' : moved.message);
      if (!moved.ok) return;
      assert.match(moved.lock.status().note ?? '', /\(in a waiting flock\)$/, 'taken in the waiting flock');
      assert.ok(ms >= 1300 && ms < 5000, `granted when the old lock ended (${ms} ms)`);
      assert.not.ok(othersLock(file), 'held');
      await new Promise<void>((r) => moved.lock.release(r));
      assert.ok(othersLock(file), 'ended with its close');
    } finally {
      await end(k);
    }
  }));

/**
 * Moves a lock whose old open file another process keeps (so the move is refused throughout),
 * with the wait `wait()` makes right before the move; `check` looks at the failure and how long
 * it took. Then: no waiting thread is left, and once the old lock ends nothing of this process
 * takes it.
 */
async function refusedMove(dir: string, wait: () => RelockWait,
  check: (r: { busy: boolean; message: string }, ms: number) => void): Promise<void> {
  const { file, lock } = await locked(dir);
  const k = keeper(lock.status().fd!);
  try {
    await sleep(100);
    const before = threads();
    const w = wait();
    const t0 = Date.now();
    const r = await relockImage(lock, file, true, w);
    const ms = Date.now() - t0;
    assert.not.ok(r.ok);
    if (r.ok) return;
    check(r, ms);
    await until('the waiting thread to end', () => threads() <= before, 5000);
    await end(k);
    await sleep(100);
    assert.ok(othersLock(file), 'once the old lock ends nothing of this process takes it');
  } finally {
    await end(k);
  }
}

test('relockImage: the device goes away while it waits: nothing taken, nothing left waiting', () =>
  withTempDir(async (dir) => {
    const wait = (): RelockWait => {
      let gone = false;
      setTimeout(() => { gone = true; }, 800);
      return { waitMs: 60_000, retryMs: 50, quickMs: 200, cancelled: () => gone };
    };
    await refusedMove(dir, wait, (r, ms) => {
      assert.match(r.message, /went away while its lock was moved/);
      assert.ok(ms >= 700 && ms < 4000, `given up soon after the device went away (${ms} ms)`);
    });
  }));

test('relockImage: still refused at the end of its wait: busy, nothing left waiting', () =>
  withTempDir(async (dir) => {
    await refusedMove(dir, () => ({ waitMs: 1200, retryMs: 50, quickMs: 200, cancelled: () => false }), (r, ms) => {
      assert.ok(r.busy, 'refused: another host holds it');
      assert.match(r.message, /was still refused after 1 s: another host holds it now/);
      assert.ok(ms >= 1100 && ms < 4000, `given up at the end of its wait (${ms} ms)`);
    });
  }));

test.run();
