// The native addon's surface, as seen from TypeScript. Errors thrown by any function carry
// `errno` (a number) and `syscall`; wrap calls in withErrnoCode to get `code` as well.

export interface NativeAddon {
  readonly abiVersion: number;
  /** fallocate(2); mode bits from <linux/falloc.h>. */
  fallocate(fd: number, mode: number, offset: number, length: number): void;
  /** Whether the file system of fd can punch holes; changes nothing in the file. */
  canPunchHole(fd: number): boolean;
  /** A MAP_SHARED mapping of the file as an ArrayBuffer, unmapped when collected. */
  mapFile(fd: number, length: number, offset: number, writable: boolean): ArrayBuffer;
  /** Zeroed memory at an aligned address (O_DIRECT buffers), freed when collected. */
  allocAligned(length: number, alignment: number): ArrayBuffer;
  /** Fresh anonymous memory (page-aligned, zero, resident only once touched: src/native/pool.c);
   * length a multiple of the page size; unmapped when collected. */
  mapPool(length: number): ArrayBuffer;
  /** madvise(MADV_DONTNEED) on whole pages of a mapPool buffer: they read as zero afterwards
   * and cost no memory until touched again. */
  releasePages(buffer: ArrayBuffer | Uint8Array, offset: number, length: number): void;
  /** malloc_trim(0): free memory of every malloc arena back to the kernel; whether any was. */
  trimMalloc(): boolean;
  /**
   * preadv2(2) of buf.length bytes (or into 1..256 views in order) at offset: the bytes read
   * (0 at end of file, fewer than asked for when only part is in the page cache under
   * RWF_NOWAIT), or a NEGATIVE errno.
   * Does not throw for a failed call (EAGAIN under RWF_NOWAIT is common and must be cheap).
   */
  preadv2(fd: number, buf: Uint8Array | Uint8Array[], offset: number, flags: number): number;
  /** pwritev2(2), returning as preadv2 does. */
  pwritev2(fd: number, buf: Uint8Array, offset: number, flags: number): number;
  /** RWF_NOWAIT from the headers the addon was built with (checked there against <linux/fs.h>). */
  readonly RWF_NOWAIT: number;

  // --- confined opens (src/native/openat2.c; used by src/image/open-beneath.ts) ---
  /**
   * openat2(2) of `rel` beneath the directory `root` (opened first, symlinks followed) with
   * open flags and RESOLVE_* bits; root null: from the working directory. Returns the fd;
   * throws an errno error whose syscall is "open(root)" or "openat2".
   */
  openBeneath(root: string | null, rel: string, flags: number, resolve: number): number;
  /** openBeneath on a libuv pool thread: cb(errno, fd, syscall), errno 0 on success. */
  openBeneathAsync(root: string | null, rel: string, flags: number, resolve: number,
    cb: (errno: number, fd: number, syscall: string) => void): void;
  /** fcntl(F_SETFL) without O_NONBLOCK. */
  clearNonblock(fd: number): void;
  /** From <linux/openat2.h>. */
  readonly RESOLVE_BENEATH: number;
  readonly RESOLVE_NO_MAGICLINKS: number;

  // --- an image's open, lock and close on threads of their own (src/native/thread-op.c) ---
  /**
   * On a new thread: stat(rel) first with OPEN_STAT_FIRST (root null), openBeneath, fstat,
   * O_NONBLOCK cleared, readlink of /proc/self/fd/N, fstatfs, and with OPEN_PUNCH_PROBE the
   * canPunchHole probe. cb(errno, syscall, fd, [dev, ino, size, mode, fsMagic, canPunch], real):
   * errno 0 with fd -1 is a file that is not regular (mode says what it is); real is '' when
   * /proc could not say.
   */
  threadOpen(root: string | null, rel: string, flags: number, resolve: number, how: number,
    cb: (errno: number, syscall: string, fd: number, info: number[], real: string) => void): void;
  /** flock(2) on a new thread: cb(errno), 0 on success; op GETLK: fcntl(F_GETLK) instead. */
  threadFlock(fd: number, op: number, cb: (errno: number) => void): void;
  /**
   * flock(2) that waits (op without LOCK_NB) on a new thread: cb(errno), 0 once granted, EINTR
   * when given up with threadFlockCancel. Returns the call's id.
   */
  threadFlockWait(fd: number, op: number, cb: (errno: number) => void): number;
  /** Interrupts that waiting flock (a signal to its thread); true while it has not answered yet
   * (send again a little later: a signal just before the thread entered flock is lost). */
  threadFlockCancel(id: number): boolean;
  /** fstat and fstatfs on a new thread: cb(errno, [dev, ino, size, mode, fsMagic, 0]). */
  threadFstat(fd: number, cb: (errno: number, info: number[]) => void): void;
  /** close(2) on a new thread (on AFS the last close stores dirty data): cb(errno). */
  threadClose(fd: number, cb: (errno: number) => void): void;
  /**
   * A lock keeper (src/native/lock-keeper.c) started on a new thread for the open file `fd` (an
   * open file description of its own, which the keeper keeps): cb(errno, syscall, socket, pid),
   * errno 0 when its flock (exclusive, or shared) was granted, the lock then held until every
   * copy of `socket` is closed; else `syscall` names what failed ('flock': refused).
   */
  threadLockKeeper(fd: number, shared: 0 | 1,
    cb: (errno: number, syscall: string, socket: number, pid: number) => void): void;
  /** Asks the keeper on `socket`, on a new thread: cb(errno, pid), 0 while it holds its lock. */
  threadKeeperAsk(socket: number, cb: (errno: number, pid: number) => void): void;
  readonly OPEN_STAT_FIRST: number;
  readonly OPEN_PUNCH_PROBE: number;

  // --- the image lock (src/native/lock.c; used by src/image/lock.ts) ---
  /** fcntl(F_DUPFD_CLOEXEC): another fd on the same open file description (and its lock). */
  dupCloexec(fd: number): number;
  /** pidfd_open(2) of a living process. */
  pidfdOpen(pid: number): number;
  /** pidfd_getfd(2): a copy, here, of that process's fd (the same open file description). */
  pidfdGetfd(pidfd: number, fd: number): number;
  /** prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY): 0, or the errno (EINVAL without Yama). */
  allowPtraceAny(): number;
  /** From <sys/file.h>. */
  readonly LOCK_SH: number;
  readonly LOCK_EX: number;
  readonly LOCK_NB: number;
  /** threadFlock's op for fcntl(F_GETLK) on the whole file: 0 unlocked, EAGAIN locked (on kAFS a
   * fresh status from the file server). */
  readonly GETLK: number;

  // --- io_uring (src/native/uring.c; driven by src/image/uring.ts) ---
  /**
   * An io_uring of `entries` SQEs with an eventfd registered for asynchronous completions.
   * Throws an errno error naming the call that refused (io_uring_setup: ENOSYS on an old
   * kernel, EPERM under seccomp or kernel.io_uring_disabled; EOPNOTSUPP for a missing op).
   */
  uringOpen(entries: number): RingHandle;
  /** The eventfd signalled when a completion arrives outside uringSubmit. */
  uringEventFd(ring: RingHandle): number;
  /** Queues one SQE (no system call); false when the SQ is full: submit, then queue again. */
  uringRead(ring: RingHandle, fd: number, buf: Uint8Array, offset: number, tag: number): boolean;
  uringWrite(ring: RingHandle, fd: number, buf: Uint8Array, offset: number, tag: number): boolean;
  /** One READV into `views` in order; the struct iovec array goes into `iov` (16 bytes a view,
   * 8-byte aligned), which must stay alive until the completion. */
  uringReadv(ring: RingHandle, fd: number, views: Uint8Array[], iov: Uint8Array, offset: number, tag: number): boolean;
  uringFsync(ring: RingHandle, fd: number, datasync: boolean, tag: number): boolean;
  uringFallocate(ring: RingHandle, fd: number, mode: number, offset: number, length: number, tag: number): boolean;
  /** io_uring_enter for every queued SQE: how many the kernel took, or a NEGATIVE errno. */
  uringSubmit(ring: RingHandle): number;
  /** Moves completions into out as (tag, result) pairs, result a byte count or a negative errno; returns how many. */
  uringReap(ring: RingHandle, out: Int32Array): number;
  /** Closes the ring (idempotent); only with nothing in flight. */
  uringClose(ring: RingHandle): void;

  // --- Xen devices (src/native/xen.c) and the fd watch (fdwatch.c); struct encoding lives in src/xen/linux/uapi.ts ---
  /** ioctl(2) with arg passed by pointer (the kernel may write back into it); returns the result. */
  ioctl(fd: number, request: number, arg: Uint8Array | null): number;
  /** A MAP_SHARED mapping NOT unmapped on GC (gntdev needs ordered unmapping): see munmapShared. */
  mmapShared(fd: number, length: number, offset: number | bigint, writable: boolean): ArrayBuffer;
  /** Detaches the buffer (later views see length 0), then munmaps. Only for mmapShared buffers. */
  munmapShared(buffer: ArrayBuffer): void;
  /** The virtual address of the buffer's memory; stable only for allocAligned/mmapShared memory. */
  addressOf(buffer: ArrayBuffer): bigint;
  /** A full memory barrier (__sync_synchronize), for weakly ordered CPUs; Atomics suffice on x86. */
  fence(): void;
  /**
   * Watches a readable fd with libuv's uv_poll in the main loop (which makes the fd non-blocking,
   * and throws for fds epoll refuses: regular files, directories).
   * callback(bytes, 0, length) for each read(); callback(null, 0, 0) once at end of file;
   * callback(null, errno, 0) after a read error, then the watch pauses until watchRearm. The fd
   * stays the caller's: close it after watchClose. bytes is a fresh copy of what was read, or
   * with `into` (at most a page of it is used) that same array every time, the read's data in
   * its first `length` bytes: no allocation per wake-up. Never detach `into`.
   */
  watchFd(fd: number, callback: (bytes: Uint8Array | null, errno: number, length: number) => void,
    into?: Uint8Array): WatchHandle;
  watchRearm(handle: WatchHandle): void;
  /** Stops; no callback runs afterwards. Idempotent. */
  watchClose(handle: WatchHandle): void;
  /** Whether the watch keeps the event loop alive (it does by default). */
  watchRef(handle: WatchHandle, ref: boolean): void;
}

/** An opaque handle from uringOpen. */
export type RingHandle = { readonly __ringHandle: unique symbol };

/** An opaque handle from watchFd. */
export type WatchHandle = { readonly __watchHandle: unique symbol };

/** <linux/falloc.h> */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
