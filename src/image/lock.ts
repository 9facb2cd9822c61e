// The cell-wide image lock: flock on the image, exclusive for a read-write device, shared for a
// read-only one, never waiting (LOCK_NB). It belongs to the open file description, so it is
// held through a close-on-exec dup kept for the device's whole life (an image reopened after a
// token renewal gets a new open file; the lock stays with the first), and it ends with the last
// close of that open file, after the final fsync: never LOCK_UN (in a local migration both
// sides may share the open file). A restarted device process adopts the held lock from its
// predecessor, still alive, with pidfd_getfd (the same open file), rather than locking again.
//
// On AFS the lock is a lease: the file server drops it 300 s after the last extension, and the
// client extends it with the key of the file that locked it (kAFS: fs/afs/flock.c, extension
// at half the lease, AFS_LOCKWAIT). The hold timeout stays below that (src/cli/options.ts).
//
// The OpenAFS client owns a flock by process, not by open file: a lock keeper holds it there
// (lock-fs.ts lockNeedsKeeper, src/native/keeper/lock-keeper.c). The device then holds the
// keeper's control socket instead of a dup of the image; its last close ends the keeper, whose
// exit is the close that releases the lock. A successor adopts the socket as it would the dup.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { errnoName, native } from '../native/addon';
import {
  askKeeperOnThread, closeOnThread, flockOnThread, flockWaitOnThread, fstatOnThread, getlkOnThread, keeperOnThread,
  openOnThread,
} from './thread-io';
import { processStart } from '../util/proc-identity';
import { type LockReach, lockNeedsKeeper, lockReach, lockWorks } from './lock-fs';

export type { LockReach };

/** What to do with an image on a file system without working locks (the lock-unsupported setting). */
export type LockPolicy = 'refuse' | 'warn';

export type LockMode = 'exclusive' | 'shared';

/** The lock as the status file shows it. */
export interface LockStatus {
  /** held: taken here; adopted: taken over from the previous process of the device; none: not
   * locked (a file system without locks, allowed by lock-unsupported=warn); deferred: a
   * migration destination, locked when its frontend connects; lost: found gone or in doubt
   * after the lease could have lapsed (the device writes no more, lease-guard.ts). */
  readonly state: 'held' | 'adopted' | 'none' | 'deferred' | 'lost';
  readonly mode: LockMode;
  readonly reach: LockReach;
  /** The descriptor holding it in the device process (a successor adopts it from there): a dup
   * of the image, or the socket to its lock keeper. */
  readonly fd: number | null;
  /** The lock keeper's pid, where one holds the lock (OpenAFS). */
  readonly keeper?: number;
  readonly since: string;
  readonly note?: string;
}

export type LockOutcome =
  | { readonly ok: true; readonly lock: ImageLock }
  /** busy: someone else holds it (the attach is refused as busy); else an error. */
  | { readonly ok: false; readonly busy: boolean; readonly message: string };

export class ImageLock {
  private closed = false;

  constructor(
    /** The dup holding the lock; null when not locked (state none or deferred). */
    readonly fd: number | null,
    private s: Omit<LockStatus, 'fd'>,
  ) {}

  /** The lock is gone, or can no longer be trusted: the device writes no more. */
  markLost(note: string): void {
    this.s = { ...this.s, state: 'lost', since: new Date().toISOString(), note };
  }

  status(): LockStatus {
    return { ...this.s, fd: this.closed ? null : this.fd };
  }

  get state(): LockStatus['state'] {
    return this.s.state;
  }

  /**
   * The last close of the locking open file, after the image's own descriptors are closed
   * and its final fsync is done: that is what ends the lock. In the background: on AFS the
   * last close stores dirty data and may wait for the file server.
   */
  release(done: () => void = () => undefined): void {
    if (this.closed || this.fd === null) { done(); return; }
    this.closed = true;
    closeOnThread(this.fd, () => done());
  }
}

export function lockMode(writable: boolean): LockMode {
  return writable ? 'exclusive' : 'shared';
}

/**
 * Takes the lock on the open image `fd` (a dup of it holds the lock from then on). Never waits
 * for another holder: a conflict is an answer at once.
 */
export async function lockImage(fd: number, path: string, writable: boolean, policy: LockPolicy,
  fsMagic?: number): Promise<LockOutcome> {
  const reach = lockReach(fd, fsMagic);
  const mode = lockMode(writable);
  const since = new Date().toISOString();
  if (!lockWorks(reach)) {
    const why = `${path} is on a file system whose locks do not reach other hosts (${reach}): ` +
      'nothing stops another dom0 from attaching it too';
    if (policy === 'refuse') return { ok: false, busy: false, message: `${why} (lock-unsupported=refuse)` };
    return { ok: true, lock: new ImageLock(null, { state: 'none', mode, reach, since, note: why }) };
  }
  const addon = native();
  if (lockNeedsKeeper(fd, fsMagic)) return lockThroughKeeper(fd, path, writable, policy, reach, since);
  let dup: number;
  try {
    dup = addon.dupCloexec(fd);
  } catch (e) {
    return { ok: false, busy: false, message: `${path}: cannot keep the lock: ${(e as Error).message}` };
  }
  const op = (writable ? addon.LOCK_EX : addon.LOCK_SH) | addon.LOCK_NB;
  // On threads of their own (thread-io.ts): a lock or close on a hung file server holds no
  // thread another disk needs.
  const errno = await flockOnThread(dup, op);
  if (errno === 0) return { ok: true, lock: new ImageLock(dup, { state: 'held', mode, reach, since }) };
  closeOnThread(dup);
  return refused(errno, path, writable, policy, reach, since);
}

/**
 * lockImage where the lock must belong to a process that does nothing else with the image
 * (OpenAFS): a keeper takes it on an open file of its own, opened here (on a thread: an open
 * on AFS may wait for the file server) and handed over.
 */
async function lockThroughKeeper(fd: number, path: string, writable: boolean, policy: LockPolicy, reach: LockReach,
  since: string): Promise<LockOutcome> {
  const opened = await openOnThread(`/proc/self/fd/${fd}`, fs.constants.O_RDONLY);
  if (opened instanceof Error) {
    const message = `${path}: cannot open the image for its lock keeper (${opened.message})`;
    return { ok: false, busy: false, message };
  }
  const k = await keeperOnThread(opened.fd, !writable);
  // The keeper has its own copy now: this one must not be the last close (nor is it the owner's).
  closeOnThread(opened.fd);
  if (typeof k === 'number') return refused(k, path, writable, policy, reach, since);
  if (k instanceof Error) {
    return { ok: false, busy: false, message: `${path}: cannot start the lock keeper (${k.message})` };
  }
  return {
    ok: true,
    lock: new ImageLock(k.socket, { state: 'held', mode: lockMode(writable), reach, since, keeper: k.pid }),
  };
}

/** The outcome of a refused flock. */
function refused(errno: number, path: string, writable: boolean, policy: LockPolicy, reach: LockReach,
  since: string): LockOutcome {
  const mode = lockMode(writable);
  const code = errnoName(errno);
  if (code === 'EWOULDBLOCK' || code === 'EAGAIN') {
    return { ok: false, busy: true, message: busyMessage(path, writable) };
  }
  if (code === 'EACCES' || code === 'EPERM') return { ok: false, busy: false, message: rightsMessage(path, writable) };
  if (code === 'ENOLCK' || code === 'EOPNOTSUPP' || code === 'ENOSYS' || code === 'EINVAL') {
    const why = `${path}: the file system refuses locks (flock: ${code})`;
    if (policy === 'refuse') return { ok: false, busy: false, message: `${why} (lock-unsupported=refuse)` };
    return { ok: true, lock: new ImageLock(null, { state: 'none', mode, reach, since, note: why }) };
  }
  return { ok: false, busy: false, message: `${path}: cannot lock the image (flock ${mode}: ${code})` };
}

/** What a recheck of a held lock found (verifyLock). */
export type LockCheck = { readonly held: true } | { readonly held: false; readonly message: string };

/**
 * Checks, without disturbing it, that this host still holds the lock: a new open file of the
 * image asks for an exclusive lock without waiting, which must be refused while ours stands
 * (EWOULDBLOCK); granted, nobody holds it any more (the probe's lock ends with its close at
 * once). It sees what this host's kernel believes: a lease the file server dropped on its own
 * stays invisible here (AFS: the client keeps extending, and the server keeps no owner), which
 * is why the caller treats a possible lapse on AFS as a loss (lease-guard.ts).
 */
export async function verifyLock(lock: ImageLock, path: string): Promise<LockCheck> {
  const { fd, keeper } = lock.status();
  if (fd === null) return { held: true }; // nothing taken (none, deferred): nothing to lose
  if (keeper !== undefined) {
    // A keeper holds it while it lives (a probe from here, another process, is refused by the
    // OpenAFS client's own table as long as the keeper's lock stands there).
    const pid = await askKeeperOnThread(fd);
    if (pid === keeper) return { held: true };
    return { held: false, message: `${path}: the image lock's keeper (process ${keeper}) is gone` +
      (pid instanceof Error ? ` (${pid.message})` : ` (process ${pid} answered)`) };
  }
  const addon = native();
  // Through the holder's magic link: the same file, whatever its name is now; a new open file
  // (the addon adds O_CLOEXEC). Not on the loop, nor on the pool (thread-io.ts): an open on AFS
  // may wait for the file server. Read-write: NFS emulates flock with a whole-file POSIX lock,
  // so an exclusive one needs a file open for writing (flock(2), "NFS details"; EBADF otherwise).
  const opened = await openOnThread(`/proc/self/fd/${fd}`, fs.constants.O_RDWR);
  if (opened instanceof Error) {
    return { held: false, message: `${path}: the descriptor holding the image lock is unusable (${opened.message})` };
  }
  const probe = opened.fd;
  const errno = await flockOnThread(probe, addon.LOCK_EX | addon.LOCK_NB);
  // Closed before the answer: a granted probe's lock must be gone when the caller looks again.
  await new Promise<void>((r) => closeOnThread(probe, () => r()));
  const code = errno === 0 ? 'granted' : errnoName(errno);
  if (code === 'EWOULDBLOCK' || code === 'EAGAIN') return { held: true };
  return {
    held: false,
    message: code === 'granted'
      ? `${path}: nobody holds the image lock any more (a test lock was granted): it was lost`
      : `${path}: the image lock cannot be checked (flock: ${code})`,
  };
}

/** How relockImage waits for its lock: at most waitMs, trying again every retryMs. */
export interface RelockWait {
  readonly waitMs: number;
  readonly retryMs: number;
  /** How long it tries without waiting (LOCK_NB, every retryMs) before it waits in flock for the
   * rest of waitMs; default QUICK_MS. */
  readonly quickMs?: number;
  /** True once the device is going away: stop, take nothing. */
  readonly cancelled: () => boolean;
}

/** What kAFS answers a lock asked with a key that lapsed or went (fs/afs/flock.c afs_do_setlk). */
const KEY_ERRORS = new Set(['EKEYEXPIRED', 'EKEYREVOKED', 'EKEYREJECTED', 'ENOKEY']);

/** relockImage's tries without waiting: a release of our own under way ends within this. */
export const QUICK_MS = 2000;
/** How often a waiting flock looks whether the device went away. */
const CANCEL_POLL_MS = 200;

/**
 * Moves the lock to a new open file of the image, opened now (with the key of the tokens in
 * force now), after a token renewal. kAFS extends a lock with the key of the file that first
 * took it, and a renewal is a new key, never an update of the old one (fs/afs/flock.c
 * afs_lock_work: vnode->lock_key; a failed extension is only retried, every 10 s, while the
 * VFS lock stays granted): once that key lapses the file server drops the lock 300 s after the
 * last extension, and another client may take it while this one goes on writing. The key of a
 * held lock is replaced only by taking the lock again: so the old open file is closed (its
 * last close releases the lock with the old key), and the new one takes it again, until granted
 * or `w.waitMs` (another client may be first: the caller stores nothing meanwhile). Either way
 * `lock` is closed; a failure is the lock lost.
 *
 * First without waiting (LOCK_NB, F_GETLK before each retry) for `w.quickMs`: when the release
 * reached the server, the lock is granted at once. Then in a waiting flock, on a thread that is
 * interrupted when the device goes away or at `w.waitMs`. A lock whose release failed (its key
 * had lapsed when the device was renewed late) stands on the server until its lease ends, and
 * taking it back then must not depend on a status refresh:
 *   - kAFS refuses a LOCK_NB flock without asking the server whenever the lock count of the
 *     file's last status is not 0 (fs/afs/flock.c afs_do_setlk: lock_state NONE and no
 *     FL_SLEEP: -EAGAIN, "lock_is_contended"); only a status fetched with the open file's key
 *     (F_GETLK: afs_do_getlk) renews that count. The key of the new open file can lapse during
 *     a wait that long (a short token): then the fetch fails, the count stays, every LOCK_NB is
 *     refused for ever (seen on kAFS 6.12: the device never got its lock back);
 *   - the OpenAFS file server ends a lease that ran out inside the next SetLock
 *     (src/viced/afsfileprocs.c HandleLocking: lockTime passed, lockCount and lockTime reset);
 *     whether its status shows the lock as gone before that depends on the server (its
 *     GetStatus copies disk.lock.lockCount).
 * A waiting flock (FL_SLEEP) skips the count, sends SetLock, and on EWOULDBLOCK kAFS asks again
 * every 5 s (AFS_VNODE_LOCK_WAITING_FOR_CB, afs_lock_work): granted by the first SetLock after
 * the old lease's end. A key error (the new open file's key lapsed meanwhile) opens the image
 * again with the key in force now. Waiting is as safe as polling: the server refuses every
 * SetLock while a lease stands (lockCount != 0), whoever asks; once it has run out, the first
 * client to ask gets it, which is right. Meanwhile on this host kAFS queues other flocks of the
 * file behind the waiting one (afs_do_setlk need_to_wait), a LOCK_NB one too: another attach of
 * this image here waits for the move, then is refused. Interrupting the waiting flock during
 * its SetLock (only when giving up) may leave the server a lock nobody extends: it ends with
 * that lease (as the comment at try_to_lock says).
 */
export async function relockImage(
  lock: ImageLock, path: string, writable: boolean, w: RelockWait,
): Promise<LockOutcome> {
  const old = lock.status();
  const addon = native();
  // Each call on a thread of its own (thread-io.ts): on AFS the open, the lock, F_GETLK and the
  // close each wait for the file server, and must hold neither the loop nor the pool.
  const opened = old.fd === null
    ? new Error('no descriptor holds it')
    : await openOnThread(`/proc/self/fd/${old.fd}`, fs.constants.O_RDONLY);
  await new Promise<void>((r) => lock.release(r));
  if (opened instanceof Error) {
    return { ok: false, busy: false, message: `${path}: cannot open the image again for its lock (${opened.message})` };
  }
  let fresh = opened.fd;
  const kind = writable ? addon.LOCK_EX : addon.LOCK_SH;
  const started = Date.now();
  const quickMs = Math.min(w.quickMs ?? QUICK_MS, w.waitMs);
  let code = '';
  let waited = false;
  let rekeyed = 0;
  for (;;) {
    if (w.cancelled()) break;
    const elapsed = Date.now() - started;
    let errno: number;
    if (elapsed < quickMs) {
      errno = await flockOnThread(fresh, kind | addon.LOCK_NB);
    } else {
      waited = true;
      errno = await waitForLock(fresh, kind, w.waitMs - elapsed, w.cancelled);
    }
    if (errno === 0) {
      if (w.cancelled()) break;
      const ms = Date.now() - started;
      return {
        ok: true,
        lock: new ImageLock(fresh, {
          state: 'held', mode: old.mode, reach: old.reach, since: new Date().toISOString(),
          note: `taken again with the renewed key after ${ms} ms${waited ? ' (in a waiting flock)' : ''}` +
            (rekeyed ? `, opened again ${rekeyed} time(s) for a newer key` : ''),
        }),
      };
    }
    code = errnoName(errno);
    if (KEY_ERRORS.has(code) && Date.now() - started < w.waitMs) {
      // The key of this open file lapsed while it waited (a wait for a lapsed lease can outlive
      // a short token; renew has made a newer key meanwhile): kAFS refuses the lock with it
      // (afs_do_setlk: EKEYEXPIRED from SetLock ends the request). A new open file of the
      // image takes the key in force now; without one yet, tried again a second later.
      const again = await openOnThread(`/proc/self/fd/${fresh}`, fs.constants.O_RDONLY);
      if (!(again instanceof Error)) {
        closeOnThread(fresh);
        fresh = again.fd;
        rekeyed++;
      }
      await sleep(Math.max(w.retryMs, 1000));
      continue;
    }
    if (waited) {
      if (code === 'EINTR') code = 'EWOULDBLOCK'; // given up at waitMs: still refused
      break;
    }
    if (code !== 'EWOULDBLOCK' && code !== 'EAGAIN') break;
    await getlkOnThread(fresh);
    await sleep(Math.min(w.retryMs, Math.max(0, quickMs - (Date.now() - started))));
  }
  closeOnThread(fresh);
  if (w.cancelled()) {
    return { ok: false, busy: false, message: `${path}: the device went away while its lock was moved` };
  }
  const busy = code === 'EWOULDBLOCK' || code === 'EAGAIN';
  return {
    ok: false,
    busy,
    message: busy
      ? `${path}: the image lock, released to be taken again with the renewed key, was still refused after ` +
        `${Math.round(w.waitMs / 1000)} s: another host holds it now`
      : `${path}: the image lock cannot be taken again with the renewed key (flock: ${code})`,
  };
}

/**
 * A waiting flock of `fd` (relockImage), given up after `ms` or once `cancelled()`: 0 when
 * granted, EINTR when given up, else the errno.
 */
async function waitForLock(fd: number, kind: number, ms: number, cancelled: () => boolean): Promise<number> {
  if (ms <= 0) return os.constants.errno.EINTR;
  const f = flockWaitOnThread(fd, kind);
  const deadline = setTimeout(() => f.cancel(), ms);
  const poll = setInterval(() => { if (cancelled()) f.cancel(); }, CANCEL_POLL_MS);
  try {
    return await f.done;
  } finally {
    clearTimeout(deadline);
    clearInterval(poll);
  }
}

/** A lock not taken yet: a migration destination takes it when its frontend connects. */
export function deferredLock(fd: number, writable: boolean, note: string, fsMagic?: number): ImageLock {
  return new ImageLock(null, {
    state: 'deferred', mode: lockMode(writable), reach: lockReach(fd, fsMagic), since: new Date().toISOString(), note,
  });
}

/** Where a previous process of the device keeps its lock (its status file). */
export interface LockHolder {
  readonly pid: number;
  readonly pidStart: string | undefined;
  readonly fd: number;
  /** Its lock keeper's pid, when one holds the lock (fd is then the socket to it). */
  readonly keeper?: number;
}

/**
 * Takes the lock's open file from the previous process of this device, still alive (after a
 * supervisor restart): the same open file description, so the same lock, never released in
 * between. The file must be the image opened here (dev, ino), asked on a thread of its own
 * (fstat on AFS may wait for the file server). A string: why not.
 */
export async function adoptLock(
  from: LockHolder, image: { readonly dev: number; readonly ino: number; readonly fsMagic?: number },
  writable: boolean,
): Promise<ImageLock | string> {
  const addon = native();
  let pidfd: number;
  try {
    pidfd = addon.pidfdOpen(from.pid);
  } catch (e) {
    return `process ${from.pid} is gone (${(e as Error).message})`;
  }
  try {
    // Opened first, checked after: the pidfd names this process even if the pid is reused later.
    if (from.pidStart !== undefined && processStart(from.pid) !== from.pidStart) return `process ${from.pid} is gone`;
    let fd: number;
    try {
      fd = addon.pidfdGetfd(pidfd, from.fd);
    } catch (e) {
      return `cannot take its lock (${(e as Error).message})`;
    }
    if (from.keeper !== undefined) return await adoptKeeper(fd, from, image, writable);
    const st = await fstatOnThread(fd);
    if (st instanceof Error || st.dev !== image.dev || st.ino !== image.ino) {
      // Closed on a thread too: this open file holds the predecessor's lock.
      closeOnThread(fd);
      return st instanceof Error ? `cannot check its descriptor ${from.fd} (${st.message})`
        : `its descriptor ${from.fd} is not this image`;
    }
    return new ImageLock(fd, {
      state: 'adopted', mode: lockMode(writable), reach: lockReach(fd, image.fsMagic || st.fsMagic),
      since: new Date().toISOString(), note: `adopted from process ${from.pid}`,
    });
  } finally {
    fs.closeSync(pidfd);
  }
}

/**
 * adoptLock of a lock a keeper holds: `socket` (taken from the predecessor) must reach the keeper
 * its status file names, and that keeper must hold this image.
 */
async function adoptKeeper(
  socket: number, from: LockHolder, image: { readonly dev: number; readonly ino: number }, writable: boolean,
): Promise<ImageLock | string> {
  const why = await keeperProblem(socket, from, image);
  if (why !== undefined) {
    closeOnThread(socket);
    return why;
  }
  return new ImageLock(socket, {
    // Keepers are made on OpenAFS only (lockNeedsKeeper).
    state: 'adopted', mode: lockMode(writable), reach: 'afs',
    since: new Date().toISOString(), note: `adopted from process ${from.pid}`, keeper: from.keeper,
  });
}

/** Why the keeper reached through `socket` is not the one to adopt, or undefined. Its file is
 * its descriptor 0, opened through /proc on a thread (no close here can release the keeper's
 * lock, which is not this process's). */
async function keeperProblem(
  socket: number, from: LockHolder, image: { readonly dev: number; readonly ino: number },
): Promise<string | undefined> {
  const pid = await askKeeperOnThread(socket);
  if (pid instanceof Error) return `its lock keeper does not answer (${pid.message})`;
  if (pid !== from.keeper) {
    return `its descriptor ${from.fd} reaches process ${pid}, not its lock keeper ${from.keeper}`;
  }
  const held = await openOnThread(`/proc/${pid}/fd/0`, fs.constants.O_RDONLY);
  if (held instanceof Error) return `cannot check its lock keeper's file (${held.message})`;
  closeOnThread(held.fd);
  return held.dev !== image.dev || held.ino !== image.ino ? `its lock keeper ${pid} holds another file` : undefined;
}

/** Lets any same-uid process take this one's files (Yama ptrace_scope 1 allows ancestors only). */
export function allowAdoption(): void {
  native().allowPtraceAny();
}

function busyMessage(path: string, writable: boolean): string {
  return `${path} is in use by another host (or another process on this one): its ` +
    `${writable ? 'exclusive' : 'shared'} lock is refused (flock, held ${writable ? 'by any user' : 'read-write'}). ` +
    'Find the holder with `afsfile status` on each dom0 (or the inode in /proc/locks); detach it there ' +
    '(xl block-detach, or shut the guest down), then attach again';
}

function rightsMessage(path: string, writable: boolean): string {
  return writable
    ? `${path}: the lock is refused (EACCES): on AFS an exclusive lock needs the w (write) right in the ACL`
    : `${path}: the shared lock is refused (EACCES): on AFS it needs the k (lock) right in the ACL ` +
      '(fs setacl DIR PRINCIPAL rlk)';
}
