// The lease guard (src/worker/lease-guard.ts): after a window in which the image lock could not
// be extended (a file server outage, a lapsed token, a stalled process) the device checks the lock
// before it writes again, and writes no more when it is lost. Real image, real flock, a real
// second process (util-linux flock) as the other host. Faked, as there is no file server here:
// the outage (store errors returned in place of the image's, as kAFS returns them) and, where
// said, that the image is on AFS (the lock's reach).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Image } from '../../src/image/image';
import { ImageLock, type LockStatus, lockImage, verifyLock } from '../../src/image/lock';
import type { DeviceImage } from '../../src/worker/device';
import { LeaseGuard } from '../../src/worker/lease-guard';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'afsfile-lease-'));
// Long against the short waits below, so that a loaded machine does not turn them into doubts.
const RISK = 1500;
let n = 0;

type Err = NodeJS.ErrnoException | null;

interface Rig {
  file: string;
  img: DeviceImage;
  lock: ImageLock;
  guard: LeaseGuard;
  lost: string[];
  /** While set, the image's stores fail with this code (the outage). */
  outage: string | undefined;
  /** While set, only fsync fails (writes land in the client's cache) and reads fail with it. */
  storeOutage: string | undefined;
  /** What tokenTrouble answers. */
  token: string | undefined;
  write(byte: number): Promise<Err>;
  fsync(): Promise<Err>;
  read(): Promise<Err>;
  /** Resolves once the lock's open file is closed (the close runs on a thread of its own). */
  close(): Promise<void>;
}

async function rig(reach?: LockStatus['reach']): Promise<Rig> {
  const file = path.join(dir, `img${n++}`);
  fs.writeFileSync(file, Buffer.alloc(1 << 20));
  const image = Image.open(file, { readOnly: false, direct: false });
  const img: DeviceImage = image;
  const r = await lockImage(image.fd, file, true, 'refuse');
  if (!r.ok) throw new Error(r.message);
  const lock = r.lock;
  const self = {} as Rig;
  // The outage: the image's stores answer like a file server that does not (checked per call).
  const realWrite = img.write.bind(img);
  const realFsync = img.fsync.bind(img);
  const realRead = img.read.bind(img);
  const fail = (cb: (e: Err) => void, code: string | undefined) => {
    const e: NodeJS.ErrnoException = new Error('file server down');
    e.code = code;
    setImmediate(cb, e);
  };
  img.write = (b, o, cb) => (self.outage ? fail(cb, self.outage) : realWrite(b, o, cb));
  img.fsync = (cb) => (self.outage ?? self.storeOutage ? fail(cb, self.outage ?? self.storeOutage) : realFsync(cb));
  img.read = (b, o, cb) => (self.storeOutage ? fail(cb, self.storeOutage) : realRead(b, o, cb));
  const lost: string[] = [];
  const guard = new LeaseGuard({
    lock: () => ({ ...lock.status(), ...(reach ? { reach } : {}) }),
    verify: () => verifyLock(lock, file),
    lost: (m) => { lock.markLost(m); lost.push(m); },
    tokenTrouble: () => self.token,
    riskMs: RISK,
    tickMs: 50,
  });
  guard.wrap(img);
  Object.assign(self, {
    file, img, lock, guard, lost, outage: undefined, storeOutage: undefined, token: undefined,
    write: (b: number) => new Promise<Err>((res) => img.write(new Uint8Array(4096).fill(b), 0, res)),
    fsync: () => new Promise<Err>((res) => img.fsync(res)),
    read: () => new Promise<Err>((res) => img.read(new Uint8Array(4096), 0, res)),
    close: () => new Promise<void>((res) => {
      guard.close();
      fs.closeSync(image.fd);
      lock.release(res);
    }),
  });
  return self;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether another process (the other host) gets an exclusive lock on `file` now. */
function otherHostLocks(file: string): boolean {
  return spawnSync('flock', ['--nonblock', '--exclusive', file, 'true']).status === 0;
}

test('a short outage: writes go on, the lock is not questioned', async () => {
  const r = await rig('afs');
  try {
    r.outage = 'ETIMEDOUT';
    assert.is((await r.write(1))?.code, 'ETIMEDOUT');
    await sleep(100);
    r.outage = undefined;
    assert.is(await r.write(2), null);
    assert.is(await r.fsync(), null);
    assert.is(fs.readFileSync(r.file)[0], 2);
    assert.equal(r.lost, []);
    assert.is(r.lock.status().state, 'held');
  } finally {
    await r.close();
  }
});

test('on AFS, an outage longer than half the lease: no more writes, reads go on, the lock is lost', async () => {
  const r = await rig('afs');
  try {
    assert.is(await r.write(1), null);
    assert.is(await r.fsync(), null);
    r.outage = 'ETIMEDOUT';
    assert.is((await r.write(2))?.code, 'ETIMEDOUT');
    await sleep(RISK + 100);
    r.outage = undefined; // the file server is back, but our lease may be another client's lock now
    const w = await r.write(3);
    assert.is(w?.code, 'ENOLCK', 'the write after the possible lapse is refused');
    assert.match(w?.message ?? '',
      /write refused: the image lock is lost: the lock could not be extended for \d+ s \(write: ETIMEDOUT\)/);
    assert.is((await r.fsync())?.code, 'ENOLCK', 'fsync too: it would store');
    assert.is((await r.write(4))?.code, 'ENOLCK', 'and every later write');
    assert.is(await r.read(), null, 'reads go on');
    assert.is(fs.readFileSync(r.file)[0], 1, 'nothing written after the doubt');
    assert.is(r.lost.length, 1, 'the administrator is told once');
    assert.match(r.lost[0]!, /half the AFS lock lease \(300 s\).*detach the disk and attach it again/);
    assert.is(r.lock.status().state, 'lost', 'the status file shows it');
  } finally {
    await r.close();
  }
});

test('on AFS, writes the cache takes do not end an outage, a read error starts one; an fsync ends it', async () => {
  const r = await rig('afs');
  const s = await rig('afs');
  try {
    r.storeOutage = 'ETIMEDOUT';
    assert.is((await r.read())?.code, 'ETIMEDOUT', 'a read error: trouble from now');
    for (let i = 0; i < 3; i++) {
      assert.is(await r.write(8), null, 'written into the cache');
      await sleep(RISK / 3 + 50);
    }
    r.storeOutage = undefined;
    assert.is((await r.fsync())?.code, 'ENOLCK', 'the outage lasted longer than half the lease');
    s.storeOutage = 'ETIMEDOUT';
    assert.is((await s.fsync())?.code, 'ETIMEDOUT');
    await sleep(100);
    s.storeOutage = undefined;
    assert.is(await s.fsync(), null, 'a completed fsync ends the outage in time');
    await sleep(RISK / 2 + 50);
    assert.is(await s.write(9), null, 'and no doubt comes of it later');
    assert.equal(s.lost, []);
  } finally {
    await r.close();
    await s.close();
  }
});

test('on a local file system after a long outage: the lock is checked, still ours, writes go on', async () => {
  const r = await rig();
  try {
    r.outage = 'EIO';
    assert.is((await r.write(1))?.code, 'EIO');
    assert.not.ok(otherHostLocks(r.file), 'the other host is refused during the outage');
    await sleep(RISK + 100);
    r.outage = undefined;
    assert.is(await r.write(5), null, 'checked and written');
    assert.is(fs.readFileSync(r.file)[0], 5);
    assert.not.ok(otherHostLocks(r.file), 'the check left the lock in place');
    assert.equal(r.lost, []);
  } finally {
    await r.close();
  }
});

test('a lock that is gone is found by the check; the check keeps no lock of its own', async () => {
  const r = await rig();
  // The lock's open file ended behind the device's back (what a lost lock looks like here):
  // a record of a lock on an open file of the image that holds none.
  const record = { state: 'held', mode: 'exclusive', reach: 'local', since: '' } as const;
  const gone = new ImageLock(fs.openSync(r.file, 'r+'), record);
  try {
    assert.equal(await verifyLock(r.lock, r.file), { held: true }, 'the real lock is seen as held');
    assert.equal(await verifyLock(gone, r.file), { held: true }, 'while the real one stands, no check can tell');
    await r.close(); // the real lock ends with the last close of its open file
    const v = await verifyLock(gone, r.file);
    assert.is(v.held, false);
    assert.match(v.held ? '' : v.message, /nobody holds the image lock any more/);
    assert.ok(otherHostLocks(r.file), 'the check did not keep a lock of its own');
  } finally {
    gone.release();
  }
});

test('on AFS, a token that lapsed while the device was idle: the next write is refused', async () => {
  const r = await rig('afs');
  try {
    r.token = 'the AFS token for t.cell has expired';
    await sleep(RISK + 150);
    r.token = undefined; // renewed; the lease may have lapsed in between all the same
    await sleep(100);
    const w = await r.write(6);
    assert.is(w?.code, 'ENOLCK');
    assert.match(w?.message ?? '', /the AFS token for t\.cell has expired/);
  } finally {
    await r.close();
  }
});

test('a stalled process (no run for longer than half the lease): checked before the next write', async () => {
  const local = await rig();
  const afs = await rig('afs');
  try {
    assert.is(await local.write(1), null);
    const until = Date.now() + RISK + 100;
    while (Date.now() < until) { /* the whole process stalls: no timer runs */ }
    await sleep(120); // the tick sees the gap
    assert.is(await local.write(7), null, 'local: still held, written');
    assert.is((await afs.write(7))?.code, 'ENOLCK', 'AFS: the lease may have lapsed');
    assert.match(afs.lost[0] ?? '', /did not run for \d+ s/);
  } finally {
    await local.close();
    await afs.close();
  }
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
test.run();
