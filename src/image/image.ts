// The image file: open with checks, size, positional I/O, fsync, hole punching.
// The data path uses callback-style fs calls (no promise per request).
//
// Buffered reads first try preadv2(RWF_NOWAIT) on the calling thread: a page-cache hit costs a
// copy and no trip through libuv's thread pool, whose hand-off is the ceiling of the pool path
// (bench: raw fs.read x32 reaches 0.15x fio psync). What is not cached answers EAGAIN (or a
// short count) at once, and that part goes to the pool as before.
import createDebug from 'debug';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { native, withErrnoCode } from '../native/addon';
import { nameLinuxErrno } from '../util/linux-errno';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, type NativeAddon } from '../native/types';

const log = createDebug('afsfile:image');
const { EOPNOTSUPP, EINVAL } = os.constants.errno;
/**
 * After a NOWAIT miss, this many reads at most go straight to the pool before the next try.
 * A miss is not free: preadv2 starts the readahead I/O from the calling thread before it
 * answers EAGAIN, about 30 us here (a hit costs 1-2 us and saves a pool round trip of ~10 us
 * of main-thread time); a cold file read at 4k qd32 ran at 22-37k IOPS with a try per read,
 * 50-87k with the pool alone. So the skip doubles per miss, up to this, and halves per hit;
 * with it, the cold case is back on par with the pool alone (14.0k vs 12.0k, 5 rounds).
 */
const MAX_SKIP = 128;

export const SECTOR = 512;

export interface OpenOptions {
  readonly readOnly: boolean;
  /** O_DIRECT: buffers and offsets must then be 4096-aligned. */
  readonly direct?: boolean;
  /**
   * Try page-cache hits inline with preadv2(RWF_NOWAIT) before the thread pool (default true;
   * buffered images only). False keeps every read on the pool (the bench compares the two).
   */
  readonly nowait?: boolean;
}

/** How buffered reads went (Image.nowaitStats): for tests and the bench. */
export interface NowaitStats {
  /** Reads answered whole by preadv2(RWF_NOWAIT). */
  hits: number;
  /** Reads of which NOWAIT got only a part; the pool did the rest. */
  partial: number;
  /** Reads NOWAIT could not start (EAGAIN: not cached; or another error the pool then met). */
  misses: number;
  /** Reads sent straight to the pool, not tried, after recent misses (see MAX_SKIP). */
  skipped: number;
  /** Still trying: false from the first EOPNOTSUPP/EINVAL (a file system without NOWAIT). */
  enabled: boolean;
}

export type IoCallback = (err: NodeJS.ErrnoException | null) => void;

/** Why an image cannot be served, phrased for the administrator. */
export class ImageError extends Error {
  constructor(readonly image: string, readonly why: string, readonly code?: string) {
    super(`${image}: ${why}`);
    this.name = 'ImageError';
  }
}

export class Image {
  private readonly nowait: NowaitStats;
  private readonly addon: NativeAddon | null;
  private readonly rwfNowait: number;
  /** Reads left to send straight to the pool, and the next such run's length (MAX_SKIP). */
  private skipLeft = 0;
  private skipNext = 1;

  /** Pool operations still running per descriptor: a replaced one is closed when it has none. */
  private readonly pending = new Map<number, number>();
  /** Descriptors replaced by reopen(), closed once their pending operations are done. */
  private readonly retired = new Set<number>();
  private closed = false;

  private constructor(
    readonly path: string,
    private fdNow: number,
    readonly size: number,
    readonly readOnly: boolean,
    readonly direct: boolean,
    readonly canDiscard: boolean,
    readonly dev: number,
    readonly ino: number,
    /** The file opened (symlinks resolved), for telling two names of one image apart. */
    readonly realpath: string,
    nowait: boolean,
  ) {
    // O_DIRECT reads never come from the page cache: NOWAIT would only add a failed syscall.
    const enabled = nowait && !direct;
    this.addon = enabled ? native() : null;
    this.rwfNowait = this.addon ? this.addon.RWF_NOWAIT : 0;
    this.nowait = { hits: 0, partial: 0, misses: 0, skipped: 0, enabled };
  }

  /** Opens and checks an image: a regular file, a whole number of sectors, the right access. */
  static open(path: string, opts: OpenOptions): Image {
    let real: string;
    try {
      checkStat(path, fs.statSync(path));
      real = fs.realpathSync(path);
    } catch (err) {
      throw err instanceof ImageError ? err : explain(path, err as NodeJS.ErrnoException, 'stat');
    }
    let fd: number;
    try {
      fd = fs.openSync(real, openFlags(opts));
    } catch (err) {
      throw explain(path, err as NodeJS.ErrnoException, 'open');
    }
    return Image.adopt(fd, path, real, opts);
  }

  /**
   * Image.open without blocking the event loop: the supervisor opens images of every guest,
   * and an open on a hung file server must stall only that device's hotplug, not the others.
   */
  static async openAsync(path: string, opts: OpenOptions): Promise<Image> {
    let real: string;
    try {
      checkStat(path, await fs.promises.stat(path));
      real = await fs.promises.realpath(path);
    } catch (err) {
      throw err instanceof ImageError ? err : explain(path, err as NodeJS.ErrnoException, 'stat');
    }
    let fd: number;
    try {
      // The callback form gives a bare fd: a FileHandle would close it on garbage collection.
      fd = await new Promise<number>((resolve, reject) => fs.open(real, openFlags(opts), (e, n) => (e ? reject(e) : resolve(n))));
    } catch (err) {
      throw explain(path, err as NodeJS.ErrnoException, 'open');
    }
    return Image.adopt(fd, path, real, opts);
  }

  /**
   * An image another process opened and checked (the supervisor hands its fd to the device
   * process): checked again here, as it may have changed in between.
   */
  static fromFd(fd: number, path: string, opts: OpenOptions): Image {
    let real = path;
    try {
      real = fs.realpathSync(path);
    } catch {
      // The name may be gone (renamed while served); the fd is what counts.
    }
    return Image.adopt(fd, path, real, opts);
  }

  private static adopt(fd: number, path: string, real: string, opts: OpenOptions): Image {
    let fst: fs.Stats;
    try {
      fst = fs.fstatSync(fd);
      checkStat(path, fst);
    } catch (err) {
      fs.closeSync(fd);
      throw err instanceof ImageError ? err : explain(path, err as NodeJS.ErrnoException, 'stat');
    }
    let canDiscard = false;
    if (!opts.readOnly) {
      try {
        canDiscard = withErrnoCode(() => native().canPunchHole(fd));
      } catch {
        canDiscard = false;
      }
    }
    return new Image(path, fd, fst.size, opts.readOnly, opts.direct === true, canDiscard, fst.dev, fst.ino, real, opts.nowait !== false);
  }

  /** The descriptor new operations use (reopen() replaces it). */
  get fd(): number {
    return this.fdNow;
  }

  /**
   * Opens the same file again and sends every later operation to the new descriptor; the old
   * one is closed as soon as the operations already under way on it have ended (never under
   * them: its number could be reused). Why: kAFS writes back with the key cached when the
   * file was opened, and a renewed token is a new key (DESIGN "Durability"); closing the old
   * descriptor drops the old key from the file's write-back keys. Dirty pages stay in the page
   * cache. Refused (throws ImageError) when the name no longer leads to this file.
   */
  reopen(): void {
    if (this.closed) return;
    let fd: number;
    try {
      fd = fs.openSync(this.realpath, openFlags({ readOnly: this.readOnly, direct: this.direct }));
    } catch (err) {
      throw explain(this.path, err as NodeJS.ErrnoException, 'reopen');
    }
    try {
      const st = fs.fstatSync(fd);
      if (st.dev !== this.dev || st.ino !== this.ino) throw new ImageError(this.path, 'is another file now; not reopened', 'ESTALE');
    } catch (err) {
      fs.closeSync(fd);
      throw err instanceof ImageError ? err : explain(this.path, err as NodeJS.ErrnoException, 'reopen');
    }
    const old = this.fdNow;
    this.fdNow = fd;
    this.retire(old);
  }

  private retire(fd: number): void {
    if (this.pending.get(fd)) { this.retired.add(fd); return; }
    this.retired.delete(fd);
    try { fs.closeSync(fd); } catch (e) { log('%s: closing the replaced descriptor: %s', this.path, (e as Error).message); }
  }

  /** Wraps a pool operation's callback on `fd`: counts it while it runs. */
  private track(fd: number, cb: IoCallback): IoCallback {
    this.pending.set(fd, (this.pending.get(fd) ?? 0) + 1);
    return (err) => {
      const left = (this.pending.get(fd) ?? 1) - 1;
      if (left) this.pending.set(fd, left); else this.pending.delete(fd);
      if (!left && this.retired.has(fd)) this.retire(fd);
      cb(err);
    };
  }

  /**
   * Reads exactly buf.length bytes at offset (a short read past EOF is an error).
   *
   * A read served from the page cache calls cb(null) BEFORE read() returns (BlockFile allows
   * it). The engine is built for that (see Engine.runStep) and answers such reads in the same
   * pump, which deferring the callback (a microtask, setImmediate) would push to the next one:
   * measured at 4k qd1, 57k IOPS against 45k. Errors are never reported synchronously: every
   * failure goes through the pool path.
   */
  read(buf: Uint8Array, offset: number, cb: IoCallback): void {
    const addon = this.addon;
    if (addon !== null && this.nowait.enabled) {
      if (this.skipLeft > 0) {
        this.skipLeft--;
        this.nowait.skipped++;
      } else {
        const len = buf.length;
        const n = addon.preadv2(this.fd, buf, offset, this.rwfNowait);
        if (n === len) {
          this.nowait.hits++;
          if (this.skipNext > 1) this.skipNext >>= 1;
          return cb(null);
        }
        // Not (all) cached: the next reads likely are not either (see MAX_SKIP).
        this.skipLeft = this.skipNext;
        this.skipNext = Math.min(this.skipNext * 2, MAX_SKIP);
        if (n > 0) {
          // Only the start was cached: the pool reads the rest (and reports EOF as before).
          this.nowait.partial++;
          return this.io(false, buf, n, len - n, offset + n, cb);
        }
        this.nowait.misses++;
        if (n === -EOPNOTSUPP || n === -EINVAL) {
          // The file system has no NOWAIT reads (OpenAFS, tmpfs here): stop asking, for good.
          this.nowait.enabled = false;
          log('%s: preadv2(RWF_NOWAIT) refused (errno %d): every read goes to the thread pool', this.path, -n);
        }
        // EAGAIN (not cached), 0 (at EOF) or any other error: the pool path does the read and
        // reports what it meets, exactly as without this step (retries of transient errors included).
      }
    }
    this.io(false, buf, 0, buf.length, offset, cb);
  }

  /** How buffered reads went so far (a copy). */
  get nowaitStats(): NowaitStats {
    return { ...this.nowait };
  }

  /**
   * Writes exactly buf.length bytes at offset, always through the pool: pwritev2(RWF_NOWAIT)
   * on a buffered ext4 file answers EOPNOTSUPP (measured on Linux 6.18: ext4 has no
   * non-blocking buffered writes), so an inline attempt would only cost a syscall.
   */
  write(buf: Uint8Array, offset: number, cb: IoCallback): void {
    if (this.readOnly) return cb(Object.assign(new Error('image is read-only'), { code: 'EROFS' }));
    this.io(true, buf, 0, buf.length, offset, cb);
  }

  private io(write: boolean, buf: Uint8Array, at: number, len: number, offset: number, cb: IoCallback): void {
    const fd = this.fdNow;
    const ended = this.track(fd, cb);
    const done = (err: NodeJS.ErrnoException | null, n: number) => {
      if (err) return ended(nameLinuxErrno(err));
      if (n === len) return ended(null);
      if (n === 0) return ended(Object.assign(new Error(`short ${write ? 'write' : 'read'} at ${offset}`), { code: 'EIO' }));
      // The rest on the descriptor current now (a reopen in between retired this one).
      this.io(write, buf, at + n, len - n, offset + n, ended);
    };
    if (write) fs.write(fd, buf, at, len, offset, done);
    else fs.read(fd, buf, at, len, offset, done);
  }

  fsync(cb: IoCallback): void {
    const fd = this.fdNow;
    const ended = this.track(fd, cb);
    fs.fdatasync(fd, (err) => ended(nameLinuxErrno(err)));
  }

  /** Punches a hole (never zero-fills): only called when canDiscard. */
  discard(offset: number, length: number): void {
    withErrnoCode(() => native().fallocate(this.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length));
  }

  close(): void {
    this.closed = true;
    for (const fd of this.retired) { try { fs.closeSync(fd); } catch { /* already gone */ } }
    this.retired.clear();
    fs.closeSync(this.fdNow);
  }
}

function openFlags(opts: OpenOptions): number {
  // The path was resolved by realpath; O_NOFOLLOW then refuses a symlink swapped in meanwhile.
  return (opts.readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR) | fs.constants.O_NOFOLLOW |
    (opts.direct ? fs.constants.O_DIRECT : 0);
}

function checkStat(path: string, st: fs.Stats): void {
  if (st.isDirectory()) throw new ImageError(path, 'is a directory, not an image file', 'EISDIR');
  if (!st.isFile()) throw new ImageError(path, 'is not a regular file (afsfile serves image files; use the default block script for devices)', 'EINVAL');
  if (st.size % SECTOR !== 0) throw new ImageError(path, `size ${st.size} is not a multiple of ${SECTOR} bytes; pad it (truncate -s %512 FILE)`, 'EINVAL');
  if (st.size === 0) throw new ImageError(path, 'is empty; make one with `afsfile create PATH --size N`', 'EINVAL');
}

function explain(path: string, err: NodeJS.ErrnoException, op: string): ImageError {
  switch (err.code) {
    case 'ENOENT': return new ImageError(path, 'does not exist (check the target= path in the disk spec)', err.code);
    case 'EACCES': case 'EPERM': return new ImageError(path, `permission denied on ${op} (on AFS: check the ACL and that the worker holds tokens)`, err.code);
    case 'EROFS': return new ImageError(path, 'is on a read-only file system; attach it with access=ro', err.code);
    case 'ELOOP': return new ImageError(path, 'has too many levels of symbolic links', err.code);
    case 'ETIMEDOUT': return new ImageError(path, 'timed out (file server unreachable?)', err.code);
    default: return new ImageError(path, `${op} failed: ${err.message}`, err.code);
  }
}
