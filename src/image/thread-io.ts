// An image's open, lock, fstat and close on threads of their own (src/native/thread-op.c), not on
// libuv's thread pool: on a hung file server each such call waits as long as the server does,
// and a few hung images would hold every pool thread, leaving the other disks of a device host
// without opens and closes. A thread per call holds only itself.
import * as os from 'node:os';
import * as fs from 'node:fs';
import { errnoName, native } from '../native/addon';

const { ENOMEM } = os.constants.errno;

/** An errno error as Node's fs makes them (errno, code, syscall). */
export function errnoError(errno: number, syscall: string): NodeJS.ErrnoException {
  const code = errnoName(errno);
  return Object.assign(new Error(`${syscall}: ${code}`), { errno, syscall, code });
}

/** close(2) on a thread of its own; `done` gets close's error (on AFS, a failed store). */
export function closeOnThread(fd: number, done: (err: NodeJS.ErrnoException | null) => void = () => undefined): void {
  native().threadClose(fd, (errno) => {
    // ENOMEM: no thread could be made (close itself never says it): the pool does it then.
    if (errno === ENOMEM) return fs.close(fd, (e) => done(e));
    done(errno === 0 ? null : errnoError(errno, 'close'));
  });
}

/** flock(2) on a thread of its own: 0, or the errno. */
export function flockOnThread(fd: number, op: number): Promise<number> {
  return new Promise((resolve) => native().threadFlock(fd, op, resolve));
}

/** A flock that waits, on a thread of its own, until granted or given up. */
export interface WaitingFlock {
  /** 0 once granted; EINTR when given up (cancel); else the errno. */
  readonly done: Promise<number>;
  /** Gives it up (the answer may still be 0: granted just before). */
  cancel(): void;
}

/** How often a cancel is sent again until the call answers (thread-op.c: one sent just before
 * the thread entered flock is lost). */
const CANCEL_AGAIN_MS = 50;

/** flock(2) that waits (op without LOCK_NB), on a thread of its own that cancel() interrupts. */
export function flockWaitOnThread(fd: number, op: number): WaitingFlock {
  const addon = native();
  let answered = false;
  let again: NodeJS.Timeout | undefined;
  let answer: (errno: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => { answer = resolve; });
  // Outside the promise: a bad argument throws here, to the caller.
  const id = addon.threadFlockWait(fd, op, (errno) => {
    answered = true;
    clearInterval(again);
    answer(errno);
  });
  return {
    done,
    cancel: () => {
      if (answered || again !== undefined) return;
      const send = () => { if (!addon.threadFlockCancel(id)) clearInterval(again); };
      again = setInterval(send, CANCEL_AGAIN_MS);
      send();
    },
  };
}

/** fcntl(F_GETLK) for a whole-file write lock on a thread of its own: 0 when no lock is seen,
 * EAGAIN when one is, else the errno (on kAFS a fresh status from the file server). */
export function getlkOnThread(fd: number): Promise<number> {
  return flockOnThread(fd, native().GETLK);
}

/** What fstatOnThread says of an open file. */
export interface ThreadStat {
  readonly dev: number;
  readonly ino: number;
  /** statfs f_type of its file system (0: unknown). */
  readonly fsMagic: number;
}

/** fstat and fstatfs of an open file on a thread of its own (on AFS statfs asks the server). */
export function fstatOnThread(fd: number): Promise<ThreadStat | NodeJS.ErrnoException> {
  return new Promise((resolve) => native().threadFstat(fd, (errno, info) => {
    if (errno !== 0) resolve(errnoError(errno, 'fstat'));
    else resolve({ dev: info[0] ?? 0, ino: info[1] ?? 0, fsMagic: info[4] ?? 0 });
  }));
}

/** A regular file opened by openOnThread, with its identity. */
export interface ThreadOpened {
  readonly fd: number;
  readonly dev: number;
  readonly ino: number;
}

/** open(2) of a regular file's path (magic links followed: /proc/self/fd/N) on a thread of its
 * own: the fd with its dev and ino, or the error. */
export function openOnThread(path: string, flags: number): Promise<ThreadOpened | NodeJS.ErrnoException> {
  return new Promise((resolve) => native().threadOpen(null, path, flags, 0, 0, (errno, syscall, fd, info) => {
    if (errno !== 0) resolve(errnoError(errno, syscall === 'openat2' ? 'open' : syscall));
    else if (fd < 0) resolve(errnoError(os.constants.errno.EINVAL, 'open'));
    else resolve({ fd, dev: info[0] ?? 0, ino: info[1] ?? 0 });
  }));
}

/** A lock keeper that holds its lock (keeperOnThread). */
export interface KeeperStarted {
  /** Its end of the control socket: the lock is held while any copy of it is open. */
  readonly socket: number;
  readonly pid: number;
}

/** Starts a lock keeper for `fd` (src/native/lock-keeper.c): the keeper, or the flock's errno
 * (refused), or the error that kept it from starting. */
export function keeperOnThread(fd: number, shared: boolean): Promise<KeeperStarted | number | NodeJS.ErrnoException> {
  return new Promise((resolve) => native().threadLockKeeper(fd, shared ? 1 : 0, (errno, syscall, socket, pid) => {
    if (errno === 0) resolve({ socket, pid });
    else if (syscall === 'flock') resolve(errno);
    else resolve(errnoError(errno, syscall || 'lock keeper'));
  }));
}

/** Asks a lock keeper through its socket: its pid while it holds the lock, else the error. */
export function askKeeperOnThread(socket: number): Promise<number | NodeJS.ErrnoException> {
  return new Promise((resolve) => native().threadKeeperAsk(socket, (errno, pid) => {
    resolve(errno === 0 ? pid : errnoError(errno, 'lock keeper'));
  }));
}
