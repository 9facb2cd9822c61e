// The image's I/O through one io_uring (src/native/uring.c): each read, write, fdatasync or
// fallocate fills one SQE; everything queued while the engine pumps is submitted with one
// io_uring_enter when the pump ends (cork/uncork), anything queued outside a pump (the fsync
// timer, a retry) a microtask later. Completions that happen inside io_uring_enter (page-cache
// hits on file systems with async buffered reads, e.g. ext4) are reaped right after it and
// their callbacks run before uncork returns, so the engine answers those reads in the same
// pump; the rest arrive through the eventfd the ring signals, watched like an event channel.
//
// Nothing here orders one operation after another: the kernel starts the SQEs of a submission
// in any order. Callers start an fsync only after the writes it must cover have completed
// (the engine does: Engine.issue), as they would with the thread pool.
import createDebug from 'debug';
import * as os from 'node:os';
import { native, errnoName } from '../native/addon';
import type { NativeAddon, RingHandle, WatchHandle } from '../native/types';
import type { IoCallback } from '../engine/block-file';
import { nameLinuxErrno } from '../util/linux-errno';

const log = createDebug('afsfile:uring');

const OP_READ = 0;
const OP_WRITE = 1;
const OP_FSYNC = 2;
const OP_FALLOCATE = 3;
const OP_READV = 4;
const OP_NAMES = ['read', 'write', 'fdatasync', 'fallocate', 'read'];
/** struct iovec: two 64-bit words. */
const IOVEC_SIZE = 16;
/** Completions taken per uringReap call. */
const REAP_MAX = 64;
const { EINTR, EAGAIN, EBUSY } = os.constants.errno;

/** One operation in flight; reused through the free list (no allocation per request). */
class Op {
  code = OP_READ;
  fd = -1;
  buf: Uint8Array | null = null;
  /** readv: the buffers, in file order, their total length, and the iovec array (kept per op). */
  views: Uint8Array[] | null = null;
  total = 0;
  iov: Uint8Array | null = null;
  /** Bytes of buf (or views) done so far (a short read or write goes on from here). */
  done = 0;
  offset = 0;
  /** fallocate's mode and length. */
  mode = 0;
  length = 0;
  cb: IoCallback | null = null;
  constructor(readonly tag: number) {}
}

export class Uring {
  private readonly addon: NativeAddon;
  private readonly ring: RingHandle;
  private readonly watch: WatchHandle;
  private readonly ops: Op[] = [];
  private readonly free: Op[] = [];
  private readonly out = new Int32Array(REAP_MAX * 2);
  /** SQEs queued and not yet submitted. */
  private queued = 0;
  private inFlight = 0;
  private corked = 0;
  private submitPending = false;
  private retry: NodeJS.Timeout | undefined;
  private referenced = false;
  private closed = false;
  private idle: (() => void) | null = null;
  private readonly submitSoon = () => {
    this.submitPending = false;
    if (this.corked === 0) this.submit();
  };

  /** Throws (with errno and syscall) when the kernel refuses io_uring. */
  constructor(entries: number) {
    this.addon = native();
    this.ring = this.addon.uringOpen(entries);
    try {
      // The eventfd's 8-byte counter is read into a buffer of our own (none allocated per wake-up).
      this.watch = this.addon.watchFd(this.addon.uringEventFd(this.ring), (bytes, errno) => this.onEvent(bytes, errno),
        new Uint8Array(8));
    } catch (err) {
      this.addon.uringClose(this.ring);
      throw err;
    }
    this.addon.watchRef(this.watch, false);
  }

  read(fd: number, buf: Uint8Array, offset: number, cb: IoCallback): void {
    this.start(OP_READ, fd, buf, offset, 0, 0, cb);
  }

  write(fd: number, buf: Uint8Array, offset: number, cb: IoCallback): void {
    this.start(OP_WRITE, fd, buf, offset, 0, 0, cb);
  }

  /** One READV filling `views` in order from offset (each a page of a request). */
  readv(fd: number, views: Uint8Array[], offset: number, cb: IoCallback): void {
    let total = 0;
    for (let i = 0; i < views.length; i++) total += views[i].length;
    this.start(OP_READV, fd, null, offset, 0, total, cb, views);
  }

  fdatasync(fd: number, cb: IoCallback): void {
    this.start(OP_FSYNC, fd, null, 0, 0, 0, cb);
  }

  fallocate(fd: number, mode: number, offset: number, length: number, cb: IoCallback): void {
    this.start(OP_FALLOCATE, fd, null, offset, mode, length, cb);
  }

  /** Holds submission until the matching uncork (nests). */
  cork(): void {
    this.corked++;
  }

  /** Submits what was queued while corked and runs the callbacks of what completed inline. */
  uncork(): void {
    if (--this.corked === 0 && this.queued > 0) this.submit();
  }

  /** Called when the last operation in flight completes, before its callback. */
  onIdle(fn: () => void): void {
    this.idle = fn;
  }

  /** Operations submitted and not yet completed. */
  get pending(): number {
    return this.inFlight;
  }

  /** Stops watching and closes the ring. Callers close only with nothing in flight. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retry);
    this.addon.watchClose(this.watch);
    this.addon.uringClose(this.ring);
  }

  private start(
    code: number, fd: number, buf: Uint8Array | null, offset: number, mode: number, length: number, cb: IoCallback,
    views: Uint8Array[] | null = null,
  ): void {
    if (this.closed) return cb(Object.assign(new Error('image closed'), { code: 'EBADF' }));
    const op = this.free.pop() ?? this.newOp();
    op.code = code;
    op.fd = fd;
    op.buf = buf;
    op.done = 0;
    op.offset = offset;
    op.mode = mode;
    op.length = length;
    op.cb = cb;
    op.views = views;
    if (views !== null) {
      op.total = length;
      if (op.iov === null || op.iov.length < views.length * IOVEC_SIZE) {
        op.iov = new Uint8Array(new BigUint64Array(Math.max(views.length, 64) * 2).buffer);
      }
    }
    this.inFlight++;
    if (!this.referenced) {
      // Something in flight keeps the process alive, as a thread-pool request would.
      this.referenced = true;
      this.addon.watchRef(this.watch, true);
    }
    this.queue(op);
  }

  private newOp(): Op {
    const op = new Op(this.ops.length);
    this.ops.push(op);
    return op;
  }

  /** Fills the SQE for op (what is left of it). */
  private queue(op: Op): void {
    const a = this.addon;
    const r = this.ring;
    for (let attempt = 0; ; attempt++) {
      let ok: boolean;
      switch (op.code) {
        case OP_READ: ok = a.uringRead(r, op.fd, rest(op), op.offset + op.done, op.tag); break;
        case OP_WRITE: ok = a.uringWrite(r, op.fd, rest(op), op.offset + op.done, op.tag); break;
        case OP_FSYNC: ok = a.uringFsync(r, op.fd, true, op.tag); break;
        case OP_READV: ok = a.uringReadv(r, op.fd, restViews(op), op.iov!, op.offset + op.done, op.tag); break;
        default: ok = a.uringFallocate(r, op.fd, op.mode, op.offset, op.length, op.tag);
      }
      if (ok) break;
      // The SQ is full (more in flight than the ring was sized for): hand it over now.
      if (attempt > 0) throw new Error('io_uring: submission queue stays full');
      this.enter();
    }
    this.queued++;
    if (this.corked === 0 && !this.submitPending) {
      this.submitPending = true;
      queueMicrotask(this.submitSoon);
    }
  }

  /**
   * io_uring_enter for what is queued. The kernel may take fewer SQEs than asked (it could not
   * allocate requests) or refuse for now (EAGAIN, EBUSY): what it left stays in the SQ and is
   * submitted again shortly, never forgotten. False when it took nothing.
   */
  private enter(): boolean {
    const n = this.addon.uringSubmit(this.ring);
    if (n > 0) this.queued = Math.max(0, this.queued - n);
    if (n >= 0 && this.queued === 0) return true;
    if (n < 0 && n !== -EINTR && n !== -EAGAIN && n !== -EBUSY) {
      process.stderr.write(`afsfile: io_uring_enter failed: ${errnoName(-n)}; retrying\n`);
    } else {
      log('io_uring_enter took %d of %d SQEs, trying again', Math.max(n, 0), this.queued + Math.max(n, 0));
    }
    if (this.retry === undefined) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        this.submit();
      }, 1);
    }
    return n > 0;
  }

  /** Submit, then deliver whatever completed inline (whose callbacks may queue more). */
  private submit(): void {
    if (this.closed) return;
    for (let round = 0; this.queued > 0 && round < 8; round++) {
      const took = this.enter();
      this.reap();
      if (!took) return; // the retry timer takes it from here
    }
    if (this.queued > 0 && !this.submitPending) {
      this.submitPending = true;
      queueMicrotask(this.submitSoon);
    }
  }

  private onEvent(bytes: Uint8Array | null, errno: number): void {
    if (bytes === null) {
      if (errno !== 0 && !this.closed) {
        process.stderr.write(`afsfile: io_uring eventfd read failed: ${errnoName(errno)}\n`);
        this.addon.watchRearm(this.watch);
      }
      return;
    }
    this.cork();
    try {
      this.reap();
    } finally {
      this.uncork();
    }
  }

  /** Takes every completion there is and runs its callback. */
  private reap(): void {
    const out = this.out;
    for (;;) {
      const n = this.addon.uringReap(this.ring, out);
      for (let i = 0; i < n; i++) this.complete(this.ops[out[2 * i]], out[2 * i + 1]);
      if (n < REAP_MAX) break;
    }
    if (this.inFlight === 0 && this.referenced && !this.closed) {
      this.referenced = false;
      this.addon.watchRef(this.watch, false);
    }
  }

  private complete(op: Op, res: number): void {
    if (res >= 0 && (op.code === OP_READ || op.code === OP_WRITE || op.code === OP_READV)) {
      const want = (op.code === OP_READV ? op.total : op.buf!.length) - op.done;
      if (res < want) {
        const at = op.offset + op.done;
        const short = `short ${OP_NAMES[op.code]} at ${at}`;
        if (res === 0) return this.end(op, Object.assign(new Error(short), { code: 'EIO' }));
        op.done += res; // a short transfer: go on from there, as the thread-pool path does
        return this.queue(op);
      }
    }
    this.end(op, res < 0 ? errnoError(-res, OP_NAMES[op.code]) : null);
  }

  private end(op: Op, err: NodeJS.ErrnoException | null): void {
    const cb = op.cb!;
    op.cb = null;
    op.buf = null;
    op.views = null;
    this.free.push(op);
    if (--this.inFlight === 0) this.idle?.();
    cb(err);
  }
}

/** As Node's fs errors look (negative errno, code, syscall), with the names libuv lacks
 * (EKEYEXPIRED and the other kAFS ones: src/util/linux-errno.ts). */
/** What is left of op's buffer (all of it unless a short transfer went before). */
function rest(op: Op): Uint8Array {
  return op.done === 0 ? op.buf! : op.buf!.subarray(op.done);
}

/** What is left of op's views after a short read: the rest of the view it stopped in, and after. */
function restViews(op: Op): Uint8Array[] {
  const views = op.views!;
  if (op.done === 0) return views;
  let skip = op.done;
  let i = 0;
  while (skip >= views[i].length) skip -= views[i++].length;
  const out = views.slice(i);
  out[0] = out[0].subarray(skip);
  return out;
}

function errnoError(errno: number, syscall: string): NodeJS.ErrnoException {
  const known = errnoName(errno);
  const err: NodeJS.ErrnoException = Object.assign(new Error(`${syscall} (io_uring)`), { errno: -errno, syscall });
  if (known !== `E${errno}`) err.code = known;
  nameLinuxErrno(err);
  err.code ??= known;
  err.message = `${err.code}: ${err.message}`;
  return err;
}

/**
 * AFSFILE_IO, for comparing the paths on one machine (bench, the Xen perf A/B). The default
 * (`uring`): io_uring for every operation when the kernel allows it. `inline-writes`: a
 * buffered image on a local file system (local-fs.ts) has the writes of an engine pump done
 * with pwrite on the calling thread (in the Xen A/B of bench/README.md no better than the
 * ring, hence not the default); `uring-reads`: writes through the thread pool; `threadpool`:
 * io_uring off.
 */
export type IoChoice = 'uring' | 'threadpool' | 'uring-reads' | 'inline-writes';

export function ioChoiceFromEnv(env: NodeJS.ProcessEnv = process.env): IoChoice {
  const v = env.AFSFILE_IO;
  return v === 'threadpool' || v === 'uring-reads' || v === 'inline-writes' ? v : 'uring';
}

/** Why io_uring cannot be used here (the kernel's refusal), or null: opens and closes a ring. */
export function uringProblem(): string | null {
  try {
    new Uring(2).close();
    return null;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return `${e.syscall ?? 'io_uring'}: ${e.errno !== undefined ? errnoName(e.errno) : e.message}`;
  }
}
