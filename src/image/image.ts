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
import { SECTOR_SIZE } from '../blkif/constants';
import type { IoCallback } from '../engine/block-file';
import { errnoName, native, withErrnoCode } from '../native/addon';
import { nameLinuxErrno } from '../util/linux-errno';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, type NativeAddon } from '../native/types';
import { fsKind } from './local-fs';
import { ioChoiceFromEnv, Uring } from './uring';
import { ImageError } from './image-error';
import { notRegular, openImageFile, openImageFileAsync } from './open-beneath';
import { closeOnThread, openOnThread } from './thread-io';

export { ImageError };

const log = createDebug('afsfile:image');
const { EOPNOTSUPP, EINVAL } = os.constants.errno;
/**
 * After a NOWAIT miss, this many reads at most go straight to the pool before the next try.
 * A miss is not free: preadv2 starts the readahead I/O from the calling thread before it
 * answers EAGAIN, and a miss costs more than a hit saves; a try per read made cold-file reads
 * clearly slower than the pool alone. So the skip doubles per miss, up to this, and halves per
 * hit; with it, the cold case is back on par with the pool alone (figures: bench/README.md).
 */
const MAX_SKIP = 128;

export interface OpenOptions {
  readonly readOnly: boolean;
  /** O_DIRECT: buffers and offsets must then be 4096-aligned. */
  readonly direct?: boolean;
  /**
   * Try page-cache hits inline with preadv2(RWF_NOWAIT) before the thread pool (default true;
   * buffered images only). False keeps every read on the pool (the bench compares the two).
   */
  readonly nowait?: boolean;
  /**
   * Image I/O through io_uring (default true). When the kernel refuses it (ENOSYS, or EPERM
   * from seccomp or kernel.io_uring_disabled), or with false, the thread-pool path serves.
   */
  readonly uring?: boolean;
  /**
   * Directories the image must lie beneath (image-roots): opened by openat2 RESOLVE_BENEATH
   * under one of them (src/image/open-beneath.ts). Empty or absent: anywhere.
   */
  readonly roots?: readonly string[];
  /**
   * Whether reopen() really opens again: default only on AFS (kAFS binds the key to the open
   * file, fs/afs/file.c afs_open; the OpenAFS client gets the same treatment). Elsewhere a new
   * open file gains nothing, and the device process, which runs without CAP_DAC_OVERRIDE, could
   * not even open an image root does not own through /proc/self/fd. Tests force it.
   */
  readonly reopen?: boolean;
}

/** SQEs of an image's ring: above the engine's default request budget plus the fsync timer. */
const RING_ENTRIES = 128;
/** The refusal is said once per process (one device per process in the worker). */
let refusalSaid = false;

/** How an image's I/O reaches the kernel: `afsfile status` shows it per device. */
export interface IoPath {
  readonly kind: 'io_uring' | 'threadpool';
  /** Why not io_uring, when the kernel refused it (e.g. "io_uring_setup: EPERM"). */
  readonly why?: string;
}

function openRing(wanted: boolean): { ring: Uring | null; path: IoPath } {
  if (!wanted) return { ring: null, path: { kind: 'threadpool', why: 'io_uring not asked for' } };
  try {
    return { ring: new Uring(RING_ENTRIES), path: { kind: 'io_uring' } };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = `${e.syscall ?? 'io_uring'}: ${typeof e.errno === 'number' ? errnoName(e.errno) : e.message}`;
    if (!refusalSaid) {
      refusalSaid = true;
      process.stderr.write(`afsfile: io_uring refused (${why}); image I/O goes through the thread pool\n`);
    }
    log('io_uring refused: %s', why);
    return { ring: null, path: { kind: 'threadpool', why } };
  }
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

export class Image {
  private readonly nowait: NowaitStats;
  private readonly addon: NativeAddon | null;
  private readonly rwfNowait: number;
  private readonly ring: Uring | null;
  /** Writes through the thread pool even with a ring (AFSFILE_IO=uring-reads). */
  private readonly poolWrites: boolean;
  /** Writes of a pump with pwrite on this thread (AFSFILE_IO=inline-writes; see write()). */
  private readonly inlineWrites: NativeAddon | null;
  /** Inside cork/uncork (an engine pump). */
  private corked = false;
  readonly ioPath: IoPath;
  /** statfs f_type of the image's file system (0: unknown): the lock's reach (lock-fs.ts). */
  readonly fsMagic: number;
  /** Reads left to send straight to the pool, and the next such run's length (MAX_SKIP). */
  private skipLeft = 0;
  private skipNext = 1;
  /**
   * With io_uring: reads of this engine pump still to try inline with NOWAIT first. One per
   * pump: a lone read (queue depth 1) costs one preadv2 then, where the ring costs an
   * io_uring_enter, an eventfd read and a reap (more CPU per request: bench/README.md); reads
   * beyond the first go to the ring, which submits them all in one call.
   */
  private inlineLeft = 0;
  /** The open file in use: reopen() replaces it. */
  private curFd: number;
  /**
   * Whether reopen() opens the file again (AFS, see OpenOptions.reopen); else it keeps the open
   * file and reports success.
   */
  readonly reopenNeeded: boolean;
  /** Calls in flight on any fd; fds replaced by reopen() are closed when this reaches 0. */
  private busy = 0;
  private stale: number[] = [];

  private constructor(
    readonly path: string,
    fd: number,
    readonly size: number,
    readonly readOnly: boolean,
    readonly direct: boolean,
    readonly canDiscard: boolean,
    readonly dev: number,
    readonly ino: number,
    /** The file opened (symlinks resolved), for telling two names of one image apart. */
    readonly realpath: string,
    nowait: boolean,
    private readonly opts: OpenOptions,
    /** statfs f_type when the open already asked (openAsync); else asked here. */
    fsMagic?: number,
  ) {
    this.curFd = fd;
    const fsk = fsKind(fd, fsMagic);
    this.fsMagic = fsk.magic;
    this.reopenNeeded = opts.reopen ?? fsk.afs;
    const choice = ioChoiceFromEnv();
    const { ring, path: ioPath } = openRing(opts.uring !== false && choice !== 'threadpool');
    this.ring = ring;
    ring?.onIdle(() => {
      if (this.stale.length > 0) this.closeStale();
    });
    this.poolWrites = choice === 'uring-reads';
    const inline = choice === 'inline-writes' && !readOnly && !direct && ring !== null && fsk.local;
    this.inlineWrites = inline ? native() : null;
    this.ioPath = ioPath;
    // O_DIRECT reads never come from the page cache: NOWAIT would only add a failed syscall.
    const enabled = nowait && !direct;
    this.addon = enabled ? native() : null;
    this.rwfNowait = this.addon ? this.addon.RWF_NOWAIT : 0;
    this.nowait = { hits: 0, partial: 0, misses: 0, skipped: 0, enabled };
  }

  /** Opens and checks an image: a regular file, a whole number of sectors, the right access. */
  static open(path: string, opts: OpenOptions): Image {
    const roots = opts.roots ?? [];
    try {
      // Without roots, a device node or FIFO is refused before any open (a driver's open may do
      // something); with roots only after (a stat would walk outside the root).
      if (roots.length === 0) checkStat(path, fs.statSync(path));
    } catch (err) {
      throw err instanceof ImageError ? err : explain(path, err as NodeJS.ErrnoException, 'stat');
    }
    let opened;
    try {
      opened = openImageFile(path, openFlags(opts), roots);
    } catch (err) {
      throw err instanceof ImageError ? err : explain(path, err as NodeJS.ErrnoException, 'open');
    }
    return Image.adopt(opened.fd, path, opened.real, opts);
  }

  /**
   * Image.open without blocking the event loop: the supervisor opens images of every guest,
   * and an open on a hung file server must stall only that device's hotplug, not the others.
   * Everything asked of the file (stat, fstat, statfs, the hole-punch probe) is asked on the
   * open's own thread (open-beneath.ts): nothing here waits for the file system.
   */
  static async openAsync(path: string, opts: OpenOptions): Promise<Image> {
    let opened;
    try {
      // A bare fd (not a FileHandle, which would close it on garbage collection).
      opened = await openImageFileAsync(path, openFlags(opts), opts.roots ?? [], !opts.readOnly);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw err instanceof ImageError ? err : explain(path, e, e.syscall === 'stat' ? 'stat' : 'open');
    }
    const f = opened.facts;
    if (!f) return Image.adopt(opened.fd, path, opened.real, opts);
    try {
      checkSize(path, f.size);
    } catch (err) {
      closeOnThread(opened.fd);
      throw err;
    }
    return new Image(path, opened.fd, f.size, opts.readOnly, opts.direct === true, f.canPunch && !opts.readOnly, f.dev,
      f.ino, opened.real, opts.nowait !== false, opts, f.fsMagic);
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
    return new Image(path, fd, fst.size, opts.readOnly, opts.direct === true, canDiscard, fst.dev, fst.ino, real, opts.nowait !== false, opts);
  }

  get fd(): number {
    return this.curFd;
  }

  /**
   * Opens the same file again and uses the new open file from now on: after a failed fsync,
   * kAFS only uses a renewed key through a new open file (writeback uses the key cached at
   * open, fs/afs/file.c afs_open). Through /proc/self/fd: the same inode even when renamed,
   * no path walked again. The old fd is closed once no call is in flight on it.
   */
  reopen(cb: IoCallback): void {
    if (!this.reopenNeeded) return cb(null);
    const flags = openFlags(this.opts); // the magic link is followed: it is our own open file
    // On a thread of its own, as the first open (thread-io.ts): the file server may hang.
    void openOnThread(`/proc/self/fd/${this.curFd}`, flags).then((r) => {
      if (r instanceof Error) return cb(r);
      if (r.dev !== this.dev || r.ino !== this.ino) {
        closeOnThread(r.fd);
        return cb(Object.assign(new Error(`${this.path}: reopened a different file`), { code: 'ESTALE' }));
      }
      this.stale.push(this.curFd);
      this.curFd = r.fd;
      this.closeStale();
      cb(null);
    });
  }

  private closeStale(): void {
    if (this.busy > 0 || (this.ring !== null && this.ring.pending > 0)) return;
    for (const fd of this.stale.splice(0)) closeOnThread(fd);
  }

  /** Wraps cb to count the call in flight (reopen closes replaced fds only when none is). */
  private track(cb: IoCallback): IoCallback {
    this.busy++;
    return (err) => {
      if (--this.busy === 0 && this.stale.length > 0) this.closeStale();
      cb(err);
    };
  }

  /**
   * Reads exactly buf.length bytes at offset (a short read past EOF is an error).
   *
   * A read served from the page cache calls cb(null) BEFORE read() returns (BlockFile allows
   * it). The engine is built for that (see Engine.runStep) and answers such reads in the same
   * pump, which deferring the callback (a microtask, setImmediate) would push to the next one
   * (measurably slower at 4k qd1: bench/README.md). Errors are never reported synchronously:
   * every failure goes through the ring or the pool path.
   */
  read(buf: Uint8Array, offset: number, cb: IoCallback): void {
    const len = buf.length;
    const n = this.readInline(buf, len, offset);
    if (n === len) return cb(null);
    // Only the start was cached: the ring or the pool reads the rest (and reports EOF as before).
    // Ring calls count as busy too (Uring.pending, no wrapper per call): an SQE names the fd,
    // which reopen must not close before the kernel has taken it.
    if (this.ring !== null) return this.ring.read(this.curFd, n > 0 ? buf.subarray(n) : buf, offset + n, cb);
    this.io(false, buf, n, len - n, offset + n, cb);
  }

  /**
   * The page-cache step of a buffered read: preadv2(RWF_NOWAIT) on this thread when it is worth
   * trying (the first read of a pump with a ring, every read without one); the bytes it read,
   * 0 when it read none or did not try. EAGAIN (not cached), 0 (at EOF) or any other error:
   * the ring or the pool does the read and reports what it meets, exactly as without this step
   * (retries of transient errors included).
   */
  private readInline(target: Uint8Array | Uint8Array[], len: number, offset: number): number {
    const addon = this.addon;
    const ring = this.ring;
    if (addon === null || !this.nowait.enabled || (ring !== null && this.inlineLeft <= 0)) return 0;
    if (ring !== null) this.inlineLeft--;
    if (this.skipLeft > 0) {
      this.skipLeft--;
      this.nowait.skipped++;
      return 0;
    }
    const n = addon.preadv2(this.curFd, target, offset, this.rwfNowait);
    if (n === len) {
      this.nowait.hits++;
      if (this.skipNext > 1) this.skipNext >>= 1;
      return n;
    }
    // Not (all) cached: the next reads likely are not either (see MAX_SKIP).
    this.skipLeft = this.skipNext;
    this.skipNext = Math.min(this.skipNext * 2, MAX_SKIP);
    if (n > 0) {
      this.nowait.partial++;
      return n;
    }
    this.nowait.misses++;
    if (n === -EOPNOTSUPP || n === -EINVAL) {
      // The file system has no NOWAIT reads (OpenAFS, tmpfs here): stop asking, for good.
      this.nowait.enabled = false;
      const rest = ring ? 'ring' : 'thread pool';
      log('%s: preadv2(RWF_NOWAIT) refused (errno %d): every read goes to the %s', this.path, -n, rest);
    }
    return 0;
  }

  /**
   * Reads views.length buffers in order from offset, as one READV (the pages of one request,
   * each mapped on its own: persistent grants). Errors only through cb, never synchronously.
   * The caller never passes foreign pages to an O_DIRECT image (direct I/O into them is unsafe).
   */
  readv(views: Uint8Array[], offset: number, cb: IoCallback): void {
    if (views.length === 1) return this.read(views[0], offset, cb);
    let total = 0;
    for (const v of views) total += v.length;
    // The page-cache step as for read(): a cached request costs one preadv2.
    const n = views.length <= 256 ? this.readInline(views, total, offset) : 0;
    if (n === total) return cb(null);
    this.readvRest(n > 0 ? viewsAfter(views, n) : views, offset + n, cb);
  }

  private readvRest(views: Uint8Array[], offset: number, cb: IoCallback): void {
    if (this.ring !== null) return this.ring.readv(this.curFd, views, offset, cb);
    this.busy++;
    let total = 0;
    for (const v of views) total += v.length;
    fs.readv(this.curFd, views, offset, (err, n) => {
      if (--this.busy === 0 && this.stale.length > 0) this.closeStale();
      if (err) return cb(nameLinuxErrno(err));
      if (n === total) return cb(null);
      if (n === 0) return cb(Object.assign(new Error(`short read at ${offset}`), { code: 'EIO' }));
      this.readvRest(viewsAfter(views, n), offset + n, cb); // a short read: the rest from there
    });
  }

  /** How buffered reads went so far (a copy). */
  get nowaitStats(): NowaitStats {
    return { ...this.nowait };
  }

  /**
   * Writes exactly buf.length bytes at offset: through the ring, or the pool without one.
   * With AFSFILE_IO=inline-writes, on a local file system (buffered), the writes an engine
   * pump starts are a pwrite on this thread instead, answered in the same pump as a cached
   * read is: the ring hands each buffered write to an io-wq thread (ext4 has no non-blocking
   * buffered writes, io_uring/rw.c; pwritev2(RWF_NOWAIT) answers EOPNOTSUPP) and the eventfd
   * wakes the loop again. On the host that hand-off costs more than the copy; in a PV dom0
   * under Xen the inline write was not faster (bench/README.md), so it is not the default.
   * Never on AFS, NFS, FUSE: a write there may wait for a server. Outside a pump: the ring.
   */
  write(buf: Uint8Array, offset: number, cb: IoCallback): void {
    if (this.readOnly) return cb(Object.assign(new Error('image is read-only'), { code: 'EROFS' }));
    const w = this.inlineWrites;
    if (w !== null && this.corked) {
      // Only inside a pump: a replay of kept writes (durability.ts) chains each write from the
      // previous one's callback, which must not nest once per write.
      let at = 0;
      while (at < buf.length) {
        const n = w.pwritev2(this.curFd, at === 0 ? buf : buf.subarray(at), offset + at, 0);
        if (n <= 0) break;
        at += n;
      }
      if (at === buf.length) return cb(null);
      // An error (or no progress): the ring writes the rest and reports what it meets.
      return this.ring!.write(this.curFd, buf.subarray(at), offset + at, cb);
    }
    if (this.ring !== null && !this.poolWrites) return this.ring.write(this.curFd, buf, offset, cb);
    this.io(true, buf, 0, buf.length, offset, cb);
  }

  private io(write: boolean, buf: Uint8Array, at: number, len: number, offset: number, cb: IoCallback): void {
    this.busy++;
    const done = (err: NodeJS.ErrnoException | null, n: number) => {
      if (--this.busy === 0 && this.stale.length > 0) this.closeStale();
      if (err) return cb(nameLinuxErrno(err));
      if (n === len) return cb(null);
      if (n === 0) return cb(Object.assign(new Error(`short ${write ? 'write' : 'read'} at ${offset}`), { code: 'EIO' }));
      this.io(write, buf, at + n, len - n, offset + n, cb);
    };
    if (write) fs.write(this.curFd, buf, at, len, offset, done);
    else fs.read(this.curFd, buf, at, len, offset, done);
  }

  fsync(cb: IoCallback): void {
    if (this.ring !== null) return this.ring.fdatasync(this.curFd, cb);
    fs.fdatasync(this.curFd, this.track((err) => cb(nameLinuxErrno(err))));
  }

  /** What the engine queues until uncork goes to the kernel in one submission (io_uring). */
  cork(): void {
    if (this.ring === null) return;
    this.inlineLeft = 1;
    this.corked = true;
    this.ring.cork();
  }

  /** Submits; the callbacks of what completed at once run before this returns. */
  uncork(): void {
    if (this.ring === null) return;
    this.inlineLeft = 0;
    this.corked = false;
    this.ring.uncork();
  }

  /** Punches a hole (never zero-fills): only called when canDiscard. */
  discard(offset: number, length: number, cb: IoCallback): void {
    const mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
    if (this.ring !== null) return this.ring.fallocate(this.curFd, mode, offset, length, cb);
    let err: NodeJS.ErrnoException | null = null;
    try {
      withErrnoCode(() => native().fallocate(this.curFd, mode, offset, length));
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    }
    cb(err);
  }

  /**
   * Closes the image's descriptors, each on a thread of its own (thread-io.ts): a close is a
   * call to the file server on AFS (OpenAFS stores dirty data at every close) and on FUSE, and
   * must not stall the loop that serves other disks. `done` gets the first error, once all
   * are closed.
   */
  close(done: (err: NodeJS.ErrnoException | null) => void = () => undefined): void {
    this.ring?.close();
    const fds = [...this.stale.splice(0), this.curFd];
    let left = fds.length;
    let first: NodeJS.ErrnoException | null = null;
    for (const fd of fds) {
      closeOnThread(fd, (err) => {
        first ??= err;
        if (--left === 0) done(first);
      });
    }
  }
}

/** Access and O_DIRECT; open-beneath.ts adds how the path is walked. */
function openFlags(opts: OpenOptions): number {
  return (opts.readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR) | (opts.direct ? fs.constants.O_DIRECT : 0);
}

function checkStat(path: string, st: fs.Stats): void {
  if (st.isDirectory()) throw new ImageError(path, 'is a directory, not an image file', 'EISDIR');
  if (!st.isFile()) throw notRegular(path, st);
  checkSize(path, st.size);
}

function checkSize(path: string, size: number): void {
  if (size % SECTOR_SIZE !== 0) throw new ImageError(path, `size ${size} is not a multiple of ${SECTOR_SIZE} bytes; pad it (truncate -s %512 FILE)`, 'EINVAL');
  if (size === 0) throw new ImageError(path, 'is empty; make one with `afsfile create PATH --size N`', 'EINVAL');
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

/** What is left of views after the first n bytes (n less than their total). */
function viewsAfter(views: Uint8Array[], n: number): Uint8Array[] {
  let skip = n;
  let i = 0;
  while (skip >= views[i].length) skip -= views[i++].length;
  const rest = views.slice(i);
  rest[0] = rest[0].subarray(skip);
  return rest;
}
