/* io_uring for the image I/O of one device: reads, writes, fsync/fdatasync, fallocate.
 *
 * Raw system calls, no liburing: the ring is three mmaps and two atomics (the layout is the
 * kernel's UAPI, <linux/io_uring.h>) and the addon uses nine operations of it. Debian 12's
 * liburing-dev would do (its liburing.a holds the -fPIC objects: it links into a shared
 * object), but it adds a build dependency on every machine that builds the executable, for
 * about a hundred lines of C that are all here to read.
 *
 * JS queues operations (uringRead, ...: each fills one SQE, no system call), submits them all
 * with one io_uring_enter per engine pump (uringSubmit), and reaps completions in batches
 * (uringReap) into an Int32Array of (tag, result) pairs: no allocation per request. Completions
 * that happen inside io_uring_enter (a page-cache hit on a file system with async buffered
 * reads) are there right after uringSubmit returns; the others signal the eventfd registered
 * with IORING_REGISTER_EVENTFD, which JS watches with watchFd like an event channel. (Not
 * IORING_REGISTER_EVENTFD_ASYNC: that one signals only completions posted by io-wq workers,
 * never those of O_DIRECT I/O, which arrive through task work; io_uring/io_uring.c.) The eventfd
 * is signalled for inline completions too: uringSubmit clears it when the CQ is not empty after
 * the enter, so the loop does not wake for completions JS reaps right away.
 *
 * Ordering: the kernel starts the SQEs of one submission in any order, so an FSYNC is NOT
 * ordered after writes submitted with it. The engine submits a flush's fsync only after the
 * writes it covers have completed (test/engine covers that order); nothing here links SQEs. */
#include "addon.h"
#include <errno.h>
#include <linux/io_uring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define RING_MAGIC 0x75726e67u /* "urng": tells a ring handle from another external */

struct ring {
  unsigned magic;
  int fd;                  /* the io_uring fd; -1 once closed */
  int efd;                 /* eventfd signalled on asynchronous completions */
  unsigned sq_mask, cq_mask, sq_entries;
  unsigned *sq_head, *sq_tail, *sq_array;
  unsigned *cq_head, *cq_tail;
  struct io_uring_sqe *sqes;
  struct io_uring_cqe *cqes;
  unsigned tail;           /* our SQ tail: SQEs filled, not yet published */
  void *sq_map, *cq_map;
  size_t sq_len, cq_len, sqes_len;
};

static int sys_setup(unsigned entries, struct io_uring_params *p) {
  return (int)syscall(__NR_io_uring_setup, entries, p);
}
static int sys_enter(int fd, unsigned submit, unsigned min_complete, unsigned flags) {
  return (int)syscall(__NR_io_uring_enter, fd, submit, min_complete, flags, NULL, 0);
}
static int sys_register(int fd, unsigned op, void *arg, unsigned nr) {
  return (int)syscall(__NR_io_uring_register, fd, op, arg, nr);
}

static void ring_unmap(struct ring *r) {
  if (r->sqes) munmap(r->sqes, r->sqes_len);
  if (r->cq_map && r->cq_map != r->sq_map) munmap(r->cq_map, r->cq_len);
  if (r->sq_map) munmap(r->sq_map, r->sq_len);
  r->sqes = NULL;
  r->sq_map = r->cq_map = NULL;
}

/* Closes the ring: the kernel cancels or finishes what is in flight before it lets go of the
 * buffers. The caller (Image.close) does this only once the engine has nothing in flight. */
static void ring_close(struct ring *r) {
  if (r->fd < 0) return;
  ring_unmap(r);
  close(r->fd);
  close(r->efd);
  r->fd = r->efd = -1;
}

/* The operations afsfile uses, checked with IORING_REGISTER_PROBE (Linux 5.6 has them all):
 * returns 0, or the name of the first one missing. */
static const char *missing_op(int fd) {
  static const struct { int op; const char *name; } need[] = {
    { IORING_OP_READ, "READ" }, { IORING_OP_WRITE, "WRITE" }, { IORING_OP_READV, "READV" },
    { IORING_OP_FSYNC, "FSYNC" }, { IORING_OP_FALLOCATE, "FALLOCATE" },
  };
  size_t len = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
  struct io_uring_probe *probe = calloc(1, len);
  if (!probe) return "memory for the probe";
  const char *miss = NULL;
  if (sys_register(fd, IORING_REGISTER_PROBE, probe, 256) < 0) {
    miss = "IORING_REGISTER_PROBE";
  } else {
    for (size_t i = 0; i < sizeof need / sizeof need[0] && !miss; i++)
      if (need[i].op > probe->last_op || !(probe->ops[need[i].op].flags & IO_URING_OP_SUPPORTED))
        miss = need[i].name;
  }
  free(probe);
  return miss;
}

/* Sets the ring up; 0, or an errno with *op naming the call that failed. */
static int ring_open(struct ring *r, unsigned entries, const char **op) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  memset(r, 0, sizeof *r);
  r->magic = RING_MAGIC;
  r->fd = r->efd = -1;
  p.flags = IORING_SETUP_CLAMP;
  *op = "io_uring_setup";
  int fd = sys_setup(entries, &p);
  if (fd < 0) return errno;
  r->fd = fd;
  int err;
  *op = "mmap(io_uring)";
  r->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  r->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  if (p.features & IORING_FEAT_SINGLE_MMAP) {
    if (r->cq_len > r->sq_len) r->sq_len = r->cq_len;
    r->cq_len = r->sq_len;
  }
  r->sq_map = mmap(NULL, r->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
  if (r->sq_map == MAP_FAILED) { r->sq_map = NULL; goto fail; }
  if (p.features & IORING_FEAT_SINGLE_MMAP) {
    r->cq_map = r->sq_map;
  } else {
    r->cq_map = mmap(NULL, r->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
    if (r->cq_map == MAP_FAILED) { r->cq_map = NULL; goto fail; }
  }
  r->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
  r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
  if (r->sqes == MAP_FAILED) { r->sqes = NULL; goto fail; }
  char *sq = r->sq_map, *cq = r->cq_map;
  r->sq_head = (unsigned *)(sq + p.sq_off.head);
  r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
  r->sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
  r->sq_entries = p.sq_entries;
  r->sq_array = (unsigned *)(sq + p.sq_off.array);
  r->cq_head = (unsigned *)(cq + p.cq_off.head);
  r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
  r->cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
  r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
  r->tail = *r->sq_tail;
  /* Completions are never dropped (NODROP, 5.5): the engine bounds what is in flight anyway. */
  *op = "io_uring (Linux 5.6 or later needed: IORING_FEAT_NODROP)";
  if (!(p.features & IORING_FEAT_NODROP)) { errno = EOPNOTSUPP; goto fail; }
  const char *miss = missing_op(fd);
  if (miss) { *op = miss; errno = EOPNOTSUPP; goto fail; }
  *op = "eventfd";
  r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r->efd < 0) goto fail;
  *op = "IORING_REGISTER_EVENTFD";
  if (sys_register(fd, IORING_REGISTER_EVENTFD, &r->efd, 1) < 0) goto fail;
  return 0;
fail:
  err = errno;
  ring_unmap(r);
  close(fd);
  if (r->efd >= 0) close(r->efd);
  r->fd = r->efd = -1;
  return err;
}

/* A free SQE, zeroed, or NULL when the SQ is full (the caller submits first). */
static struct io_uring_sqe *next_sqe(struct ring *r) {
  unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
  if (r->tail - head >= r->sq_entries) return NULL;
  unsigned i = r->tail & r->sq_mask;
  struct io_uring_sqe *sqe = &r->sqes[i];
  memset(sqe, 0, sizeof *sqe);
  r->sq_array[i] = i;
  r->tail++;
  return sqe;
}

/* Publishes the filled SQEs and hands them to the kernel: the number submitted, or -errno. */
static int ring_submit(struct ring *r) {
  __atomic_store_n(r->sq_tail, r->tail, __ATOMIC_RELEASE);
  unsigned pending = r->tail - __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
  if (pending == 0) return 0;
  int n;
  do n = sys_enter(r->fd, pending, 0, 0); while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  /* Completed inline: JS reaps them now. Clearing the eventfd before that reap loses nothing
   * (a completion posted after the read signals it again) and saves the loop a wake-up. */
  if (__atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE) != *r->cq_head) {
    uint64_t v;
    ssize_t got = read(r->efd, &v, sizeof v);
    (void)got; /* EAGAIN: already clear */
  }
  return n;
}

/* --- N-API ------------------------------------------------------------------------------- */

static void finalize_ring(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  ring_close(data);
  free(data);
}

static struct ring *get_ring(napi_env env, napi_value v) {
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, v, &p) != napi_ok || !p || ((struct ring *)p)->magic != RING_MAGIC) {
    afs_throw_type(env, "expected a ring from uringOpen");
    return NULL;
  }
  struct ring *r = p;
  if (r->fd < 0) {
    afs_throw_errno(env, "io_uring (ring closed)", EBADF);
    return NULL;
  }
  return r;
}

/* uringOpen(entries) → ring handle. Throws an errno error naming the call that refused
 * (io_uring_setup: ENOSYS on an old kernel, EPERM under seccomp or kernel.io_uring_disabled). */
static napi_value js_uring_open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint32_t entries;
  if (afs_args(env, info, 1, argv, "uringOpen(entries)") || afs_arg_u32(env, argv[0], &entries)) return NULL;
  if (entries < 1 || entries > 4096) return afs_throw_type(env, "uringOpen: entries must be 1..4096");
  struct ring *r = malloc(sizeof *r);
  if (!r) return afs_throw_errno(env, "uringOpen", ENOMEM);
  const char *op;
  int err = ring_open(r, entries, &op);
  if (err) {
    free(r);
    return afs_throw_errno(env, op, err);
  }
  napi_value handle;
  if (napi_create_external(env, r, finalize_ring, NULL, &handle) != napi_ok) {
    ring_close(r);
    free(r);
    return afs_throw_errno(env, "napi_create_external", ENOMEM);
  }
  return handle;
}

/* uringEventFd(ring) → the eventfd to watch for asynchronous completions. */
static napi_value js_uring_event_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct ring *r;
  if (afs_args(env, info, 1, argv, "uringEventFd(ring)") || !(r = get_ring(env, argv[0]))) return NULL;
  return afs_make_i64(env, r->efd);
}

/* uringRead/uringWrite(ring, fd, buf, offset, tag) → false when the SQ is full (submit first). */
static napi_value rw(napi_env env, napi_callback_info info, int write) {
  napi_value argv[5];
  struct ring *r;
  int64_t fd, off;
  uint32_t tag;
  void *data;
  size_t len;
  const char *usage = write ? "uringWrite(ring, fd, buf, offset, tag)" : "uringRead(ring, fd, buf, offset, tag)";
  if (afs_args(env, info, 5, argv, usage) ||
      !(r = get_ring(env, argv[0])) || afs_arg_fd(env, argv[1], &fd) || afs_arg_bytes(env, argv[2], &data, &len) ||
      afs_arg_i64(env, argv[3], &off) || afs_arg_u32(env, argv[4], &tag)) return NULL;
  if (off < 0 || len > 0x7fffffff)
    return afs_throw_type(env, "uringRead/uringWrite: offset negative or buffer over 2 GiB");
  struct io_uring_sqe *sqe = next_sqe(r);
  if (!sqe) return afs_make_bool(env, 0);
  sqe->opcode = write ? IORING_OP_WRITE : IORING_OP_READ;
  sqe->fd = (int)fd;
  sqe->addr = (uint64_t)(uintptr_t)data;
  sqe->len = (uint32_t)len;
  sqe->off = (uint64_t)off;
  sqe->user_data = tag;
  return afs_make_bool(env, 1);
}
static napi_value js_uring_read(napi_env env, napi_callback_info info) { return rw(env, info, 0); }
static napi_value js_uring_write(napi_env env, napi_callback_info info) { return rw(env, info, 1); }

/* uringReadv(ring, fd, views: Uint8Array[], iov: Uint8Array, offset, tag) → false when the SQ
 * is full. One READV into several buffers (a request's pages, each its own mapping); the
 * struct iovec array is written into `iov`, which the caller keeps until the completion (the
 * kernel may read it when the request goes async). */
static napi_value js_uring_readv(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  struct ring *r;
  int64_t fd, off;
  uint32_t tag, count;
  void *iovmem;
  size_t iovlen;
  bool is;
  if (afs_args(env, info, 6, argv, "uringReadv(ring, fd, views, iov, offset, tag)") ||
      !(r = get_ring(env, argv[0])) || afs_arg_fd(env, argv[1], &fd) ||
      afs_arg_bytes(env, argv[3], &iovmem, &iovlen) || afs_arg_i64(env, argv[4], &off) ||
      afs_arg_u32(env, argv[5], &tag)) return NULL;
  if (napi_is_array(env, argv[2], &is) != napi_ok || !is || napi_get_array_length(env, argv[2], &count) != napi_ok)
    return afs_throw_type(env, "uringReadv: views must be an array of Uint8Array");
  if (off < 0 || count == 0 || count > 1024 || (size_t)count * sizeof(struct iovec) > iovlen ||
      ((uintptr_t)iovmem % _Alignof(struct iovec)) != 0)
    return afs_throw_type(env, "uringReadv: offset negative, 1..1024 views, or iov too small or unaligned");
  struct iovec *iov = iovmem;
  for (uint32_t i = 0; i < count; i++) {
    napi_value v;
    void *data;
    size_t len;
    if (napi_get_element(env, argv[2], i, &v) != napi_ok || afs_arg_bytes(env, v, &data, &len)) return NULL;
    iov[i].iov_base = data;
    iov[i].iov_len = len;
  }
  struct io_uring_sqe *sqe = next_sqe(r);
  if (!sqe) return afs_make_bool(env, 0);
  sqe->opcode = IORING_OP_READV;
  sqe->fd = (int)fd;
  sqe->addr = (uint64_t)(uintptr_t)iov;
  sqe->len = count;
  sqe->off = (uint64_t)off;
  sqe->user_data = tag;
  return afs_make_bool(env, 1);
}

/* uringFsync(ring, fd, datasync, tag) → false when the SQ is full. */
static napi_value js_uring_fsync(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  struct ring *r;
  int64_t fd;
  int datasync;
  uint32_t tag;
  if (afs_args(env, info, 4, argv, "uringFsync(ring, fd, datasync, tag)") || !(r = get_ring(env, argv[0])) ||
      afs_arg_fd(env, argv[1], &fd) || afs_arg_bool(env, argv[2], &datasync) || afs_arg_u32(env, argv[3], &tag))
    return NULL;
  struct io_uring_sqe *sqe = next_sqe(r);
  if (!sqe) return afs_make_bool(env, 0);
  sqe->opcode = IORING_OP_FSYNC;
  sqe->fd = (int)fd;
  sqe->fsync_flags = datasync ? IORING_FSYNC_DATASYNC : 0;
  sqe->user_data = tag;
  return afs_make_bool(env, 1);
}

/* uringFallocate(ring, fd, mode, offset, length, tag) → false when the SQ is full. */
static napi_value js_uring_fallocate(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  struct ring *r;
  int64_t fd, off, len;
  uint32_t mode, tag;
  if (afs_args(env, info, 6, argv, "uringFallocate(ring, fd, mode, offset, length, tag)") ||
      !(r = get_ring(env, argv[0])) ||
      afs_arg_fd(env, argv[1], &fd) || afs_arg_u32(env, argv[2], &mode) || afs_arg_i64(env, argv[3], &off) ||
      afs_arg_i64(env, argv[4], &len) || afs_arg_u32(env, argv[5], &tag)) return NULL;
  if (off < 0 || len <= 0) return afs_throw_type(env, "uringFallocate: offset negative or length not positive");
  struct io_uring_sqe *sqe = next_sqe(r);
  if (!sqe) return afs_make_bool(env, 0);
  sqe->opcode = IORING_OP_FALLOCATE;
  sqe->fd = (int)fd;
  sqe->off = (uint64_t)off;
  sqe->addr = (uint64_t)len; /* fallocate's length travels in addr, its mode in len (io_uring/sync.c) */
  sqe->len = mode;
  sqe->user_data = tag;
  return afs_make_bool(env, 1);
}

/* uringSubmit(ring) → SQEs handed to the kernel, or a NEGATIVE errno (EAGAIN, EBUSY: try
 * again after reaping). Never throws for a refused submission. */
static napi_value js_uring_submit(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct ring *r;
  if (afs_args(env, info, 1, argv, "uringSubmit(ring)") || !(r = get_ring(env, argv[0]))) return NULL;
  return afs_make_i64(env, ring_submit(r));
}

/* uringReap(ring, out: Int32Array) → n: completions moved into out as (tag, result) pairs,
 * result being the byte count or a negative errno, at most out.length / 2 of them. */
static napi_value js_uring_reap(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct ring *r;
  void *data;
  size_t len;
  if (afs_args(env, info, 2, argv, "uringReap(ring, out)") || !(r = get_ring(env, argv[0])) ||
      afs_arg_bytes(env, argv[1], &data, &len)) return NULL;
  if ((uintptr_t)data % sizeof(int32_t)) return afs_throw_type(env, "uringReap: out must be an Int32Array");
  int32_t *out = data;
  size_t max = len / (2 * sizeof(int32_t));
  unsigned head = *r->cq_head; /* only this thread moves the head */
  unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
  size_t n = 0;
  for (; head != tail && n < max; head++, n++) {
    const struct io_uring_cqe *c = &r->cqes[head & r->cq_mask];
    out[2 * n] = (int32_t)(uint32_t)c->user_data;
    out[2 * n + 1] = c->res;
  }
  __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
  return afs_make_i64(env, (int64_t)n);
}

/* uringClose(ring): idempotent; the handle throws EBADF afterwards. */
static napi_value js_uring_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *p = NULL;
  if (afs_args(env, info, 1, argv, "uringClose(ring)")) return NULL;
  if (napi_get_value_external(env, argv[0], &p) != napi_ok || !p || ((struct ring *)p)->magic != RING_MAGIC)
    return afs_throw_type(env, "expected a ring from uringOpen");
  ring_close(p);
  return afs_undefined(env);
}

int afs_register_uring(napi_env env, napi_value exports) {
  static const struct afs_fn fns[] = {
    { "uringOpen", js_uring_open }, { "uringEventFd", js_uring_event_fd }, { "uringRead", js_uring_read },
    { "uringWrite", js_uring_write }, { "uringReadv", js_uring_readv }, { "uringFsync", js_uring_fsync },
    { "uringFallocate", js_uring_fallocate },
    { "uringSubmit", js_uring_submit }, { "uringReap", js_uring_reap }, { "uringClose", js_uring_close },
  };
  return afs_set_fns(env, exports, fns, AFS_COUNT(fns));
}
