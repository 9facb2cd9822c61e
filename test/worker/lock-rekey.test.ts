// After a token renewal the image lock is taken again through a new open file (device-lock.ts
// rekey, image/lock.ts relockImage): kAFS extends a lock with the key of the open file that
// took it, so a lock left on the open file from before the renewal lapses on the file server
// once that key has (300 s after its last extension), while the device writes on. Real image,
// real flock, a real second process (util-linux flock) as the other host. Faked, as there is
// no file server here: the key's lapse, played by closing every descriptor opened before the
// renewal (what is left of the lock afterwards is what the file server would still extend).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Image } from '../../src/image/image';
import type { DeviceImage } from '../../src/worker/device';
import { DeviceLock } from '../../src/worker/device-lock';
import { LeaseGuard } from '../../src/worker/lease-guard';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'afsfile-rekey-'));
let n = 0;
type Err = NodeJS.ErrnoException | null;

interface Rig {
  file: string;
  image: Image;
  lock: DeviceLock;
  guard: LeaseGuard;
  lost: string[];
  notes: string[];
  write(byte: number): Promise<Err>;
  read(): Promise<Err>;
  reopen(): Promise<Err>;
  close(): void;
}

/** statfs f_type of kAFS and of OpenAFS (lock-fs.ts): the lock is on a local file, its client played. */
const KAFS = 0x6b414653;
const OPENAFS = 0x5346414f;

async function rig(relockWaitMs = 5000, keyExpiry?: () => number | undefined, fsMagic = KAFS): Promise<Rig> {
  const file = path.join(dir, `img${n++}`);
  fs.writeFileSync(file, Buffer.alloc(1 << 20));
  // reopen: true, as on AFS: a renewal opens the image again (key-epoch.ts).
  const image = Image.open(file, { readOnly: false, direct: false, reopen: true });
  const notes: string[] = [];
  const lock = new DeviceLock({
    policy: 'refuse', migrationWaitMs: 1000, onChange: () => undefined, note: (m) => notes.push(m), relockWaitMs,
    keyExpiry,
  });
  const step = await lock.acquire({ fd: image.fd, dev: image.dev, ino: image.ino, fsMagic }, file, true, false,
    undefined);
  if (!step.ok) throw new Error(step.message);
  const lost: string[] = [];
  const guard = new LeaseGuard({
    lock: () => lock.status(),
    verify: () => lock.verify(),
    lost: (m) => { lock.markLost(m); lost.push(m); },
    tickMs: 50,
  });
  const img: DeviceImage = guard.wrap(image);
  return {
    file, image, lock, guard, lost, notes,
    write: (b) => new Promise<Err>((res) => img.write(new Uint8Array(4096).fill(b), 0, res)),
    read: () => new Promise<Err>((res) => img.read(new Uint8Array(4096), 0, res)),
    reopen: () => new Promise<Err>((res) => image.reopen(res)),
    close: () => { guard.close(); lock.release(); image.close(); },
  };
}

/** Whether another process (the other host) gets an exclusive lock on `file` now. */
function otherHostLocks(file: string): boolean {
  return spawnSync('flock', ['--nonblock', '--exclusive', file, 'true']).status === 0;
}

/** A process that keeps the open file of `fd` (and so its lock) for `ms`. */
function keeper(fd: number, ms: number): ChildProcess {
  return spawn('sleep', [String(ms / 1000)], { stdio: ['ignore', 'ignore', 'ignore', fd] });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('after a renewal the lock moves to a new open file: the old one lapsing leaves it held', async () => {
  const r = await rig();
  try {
    assert.is(await r.write(1), null);
    const before = r.lock.status()!.fd!;
    assert.is(await r.reopen(), null, 'the image is opened again with the renewed key');
    assert.is(await r.lock.rekey(), undefined, 'the lock was taken again');
    const after = r.lock.status()!;
    assert.is(after.state, 'held');
    assert.ok(after.fd !== null && after.fd !== before, 'held through another descriptor');
    assert.throws(() => fs.fstatSync(before), /EBADF/, 'the old open file holds nothing any more');
    // The key of every open file from before the renewal lapses: on kAFS that ends what they
    // hold on the file server. Nothing of them is open here any more, and the lock stands.
    assert.not.ok(otherHostLocks(r.file), 'the other host is refused');
    assert.match(r.notes.join('\n'), /taken again with the renewed key/);
    assert.is(await r.write(2), null, 'writes go on');
    r.lock.release(); // the close is in the background
    let free = false;
    for (let i = 0; i < 40 && !free; i++) { await sleep(50); free = otherHostLocks(r.file); }
    assert.ok(free, 'it ends with the close of its new open file');
  } finally {
    r.close();
  }
});

test('two renewals close together: the lock moves twice, one move after the other', async () => {
  const r = await rig();
  try {
    assert.is(await r.reopen(), null);
    const a = r.lock.rekey();
    const b = r.lock.rekey();
    assert.equal([await a, await b], [undefined, undefined], 'neither lost the lock');
    const last = r.lock.status()!;
    assert.is(last.state, 'held');
    assert.ok(last.fd !== null);
    assert.is(r.notes.filter((n) => /taken again/.test(n)).length, 2);
    assert.not.ok(otherHostLocks(r.file));
  } finally {
    r.close();
  }
});

test('stores wait while the lock is taken again; the release is awaited, the data lands', async () => {
  const r = await rig();
  // The old open file lives on in another process for a while (a slow release on the file
  // server): the lock is refused until then, and nothing may be stored meanwhile.
  const k = keeper(r.lock.status()!.fd!, 700);
  try {
    await sleep(100);
    assert.is(await r.reopen(), null);
    const t0 = Date.now();
    let rekeyed = 0;
    const held = r.guard.hold(() => r.lock.rekey()).then(() => { rekeyed = Date.now(); });
    let wrote = 0;
    const w = r.write(7).then((e) => { wrote = Date.now(); return e; });
    assert.is(await r.read(), null, 'reads go on meanwhile');
    assert.is(wrote, 0, 'the write waits');
    await held;
    assert.is(await w, null);
    assert.ok(rekeyed - t0 >= 400, `the lock was taken once the old open file ended (${rekeyed - t0} ms)`);
    assert.ok(wrote >= rekeyed, 'the write was made only with the lock held again');
    assert.is(fs.readFileSync(r.file)[0], 7);
    assert.equal(r.lost, []);
    assert.not.ok(otherHostLocks(r.file));
  } finally {
    k.kill();
    r.close();
  }
});

test('another host holds it when it is taken again: no more writes, reads go on, the lock is lost', async () => {
  const r = await rig(600);
  const k = keeper(r.lock.status()!.fd!, 20_000);
  try {
    await sleep(100);
    assert.is(await r.write(3), null);
    assert.is(await r.reopen(), null);
    await r.guard.hold(() => r.lock.rekey());
    const w = await r.write(4);
    assert.is(w?.code, 'ENOLCK', 'the write is refused');
    assert.match(w?.message ?? '', /was still refused after 1 s: another host holds it now/);
    assert.is(await r.read(), null, 'reads go on');
    assert.is(fs.readFileSync(r.file)[0], 3, 'nothing written without the lock');
    assert.is(r.lost.length, 1, 'the administrator is told');
    assert.is(r.lock.status()?.state, 'lost', 'the status file shows it');
    assert.is(r.lock.status()?.fd, null, 'no descriptor left to adopt');
  } finally {
    k.kill();
    r.close();
  }
});

test('a device going away while its lock is taken again keeps nothing', async () => {
  const r = await rig();
  const k = keeper(r.lock.status()!.fd!, 20_000);
  try {
    await sleep(100);
    assert.is(await r.reopen(), null);
    const moving = r.lock.rekey();
    await sleep(300);
    r.lock.release();
    assert.is(await moving, undefined, 'no loss reported for a device that is gone');
    k.kill();
    await new Promise((res) => k.once('exit', res));
    // The release's close runs on a thread of its own: give it its moment on a loaded machine.
    let free = false;
    for (let i = 0; i < 40 && !free; i++) { free = otherHostLocks(r.file); if (!free) await sleep(50); }
    assert.ok(free, 'no lock left behind');
  } finally {
    k.kill();
    r.close();
  }
});

test('a lock whose key lapsed already: writes go on while the file server still keeps it, then wait', async () => {
  // The key of the lock's open file lapsed 150 s ago: the file server keeps the old lock for at
  // most ~130 s more (its release cannot reach the server: it ends with the lease).
  let expiry: number | undefined = Date.now() + 60_000;
  const r = await rig(5000, () => expiry);
  assert.is(r.lock.staleKeyHorizon(), undefined, 'a valid key: released at once, nothing to wait for');
  expiry = Date.now() - 10_000; // the renewal came after the lapse
  // Rebuilt with that key: acquire reads the expiry of the key it locks with.
  const s = await rig(5000, () => expiry);
  const horizon = s.lock.staleKeyHorizon();
  assert.ok(horizon !== undefined && horizon > Date.now() + 100_000, 'kept on the server for a while yet');
  const k = keeper(s.lock.status()!.fd!, 900);
  try {
    await sleep(100);
    assert.is(await s.reopen(), null);
    expiry = Date.now() + 60_000; // the renewed key
    const t0 = Date.now();
    let rekeyed = 0;
    const held = s.guard.hold(() => s.lock.rekey(), t0 + 300).then(() => { rekeyed = Date.now(); });
    assert.is(await s.write(5), null, 'written at once, before the horizon');
    assert.ok(Date.now() - t0 < 300 && rekeyed === 0, 'while the lock is not taken again yet');
    await sleep(Math.max(0, t0 + 350 - Date.now()));
    let wrote = 0;
    const w = s.write(6).then((e) => { wrote = Date.now(); return e; });
    await held;
    assert.is(await w, null);
    assert.ok(wrote >= rekeyed, 'past the horizon the write waited for the lock');
    assert.is(s.lock.staleKeyHorizon(), undefined, 'the new lock has the renewed key');
    assert.equal(s.lost, []);
  } finally {
    k.kill();
    r.close();
    s.close();
  }
});

test('on OpenAFS a renewal leaves the lock with its keeper (the client extends it itself)', async () => {
  const r = await rig(5000, undefined, OPENAFS);
  try {
    assert.is(r.lock.status()?.reach, 'afs');
    assert.not.ok(r.lock.followsKey, 'OpenAFS extends with its own credentials, not the key of the file');
    const { fd: before, keeper } = r.lock.status()!;
    assert.ok(keeper !== undefined && keeper > 0, 'a keeper process holds it (OpenAFS owns a flock by process)');
    assert.is(await r.reopen(), null);
    assert.is(await r.lock.rekey(), undefined, 'nothing lost');
    assert.equal([r.lock.status()?.fd, r.lock.status()?.keeper], [before, keeper],
      'the same keeper holds it: no gap where another client could take it');
    assert.not.ok(r.notes.some((n) => /taken again/.test(n)), 'not taken again');
    assert.is(fs.statSync(`/proc/${keeper}/fd/0`).ino, r.image.ino);
    assert.not.ok(otherHostLocks(r.file), 'the other host is refused');
    assert.is(await r.write(9), null, 'writes go on');
  } finally {
    r.close();
  }
});

test('on kAFS it follows the key', async () => {
  const r = await rig();
  try {
    assert.ok(r.lock.followsKey);
  } finally {
    r.close();
  }
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
test.run();
