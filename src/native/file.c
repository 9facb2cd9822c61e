/* File calls Node lacks: fallocate (hole punching and its probe), shared mmap of a file, and
 * preadv2/pwritev2 with per-call flags (RWF_NOWAIT: page-cache hits without a pool thread). */
#include "addon.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* preadv2 comes from glibc with glibc's RWF_* macros; the flag reaches the kernel as is, so it
 * must equal the kernel's (UAPI <linux/fs.h>, which redefines the same names: hence the dance). */
enum { GLIBC_RWF_NOWAIT = RWF_NOWAIT };
#undef RWF_HIPRI
#undef RWF_DSYNC
#undef RWF_SYNC
#undef RWF_NOWAIT
#undef RWF_APPEND
#undef RWF_NOAPPEND
#undef RWF_ATOMIC
#undef RWF_DONTCACHE
#include <linux/fs.h>
_Static_assert(GLIBC_RWF_NOWAIT == RWF_NOWAIT, "glibc's RWF_NOWAIT differs from <linux/fs.h>");

/* fallocate(fd, mode, offset, length): mode bits as in <linux/falloc.h>. */
static napi_value js_fallocate(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int64_t fd, off, len;
  uint32_t mode;
  if (afs_args(env, info, 4, argv, "fallocate(fd, mode, offset, length)") || afs_arg_fd(env, argv[0], &fd) ||
      afs_arg_u32(env, argv[1], &mode) || afs_arg_i64(env, argv[2], &off) || afs_arg_i64(env, argv[3], &len)) return NULL;
  int r;
  do r = fallocate((int)fd, (int)mode, off, len); while (r < 0 && errno == EINTR);
  if (r < 0) return afs_throw_errno(env, "fallocate", errno);
  return afs_undefined(env);
}

/* Punch-hole probe: a hole past the end of the file changes nothing where holes are
 * supported and fails with EOPNOTSUPP where they are not (OpenAFS, tmpfs on old kernels). */
static napi_value js_can_punch_hole(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t fd;
  if (afs_args(env, info, 1, argv, "canPunchHole(fd)") || afs_arg_fd(env, argv[0], &fd)) return NULL;
  struct stat st;
  if (fstat((int)fd, &st) < 0) return afs_throw_errno(env, "fstat", errno);
  off_t at = (st.st_size + 4095) & ~(off_t)4095;
  int r = fallocate((int)fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at + 4096, 4096);
  if (r == 0) return afs_make_bool(env, 1);
  if (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL) return afs_make_bool(env, 0);
  return afs_throw_errno(env, "fallocate(PUNCH_HOLE probe)", errno);
}

static void unmap_finalizer(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

/* mapFile(fd, length, offset, writable) → ArrayBuffer over a MAP_SHARED mapping; unmapped when
 * the ArrayBuffer is collected. */
static napi_value js_map_file(napi_env env, napi_callback_info info) {
  napi_value argv[4], ab;
  void *p;
  size_t len;
  if (afs_args(env, info, 4, argv, "mapFile(fd, length, offset, writable)") || afs_mmap_args(env, argv, &p, &len))
    return NULL;
  if (napi_create_external_arraybuffer(env, p, len, unmap_finalizer, (void *)(uintptr_t)len, &ab) != napi_ok) {
    munmap(p, len);
    return afs_throw_errno(env, "napi_create_external_arraybuffer", ENOMEM);
  }
  return ab;
}

/* preadv2/pwritev2(fd, buf, offset, flags) → bytes transferred, or -errno. Never throws for a
 * failed call: with RWF_NOWAIT, EAGAIN ("not in the page cache") is the common answer and must
 * cost no exception object. Only bad arguments (a programming error) throw. */
static napi_value rw_v2(napi_env env, napi_callback_info info, int write) {
  napi_value argv[4];
  int64_t fd, off;
  uint32_t flags;
  void *data;
  size_t len;
  bool is_array = false;
  if (afs_args(env, info, 4, argv, write ? "pwritev2(fd, buf, offset, flags)" : "preadv2(fd, buf, offset, flags)") ||
      afs_arg_fd(env, argv[0], &fd) || afs_arg_i64(env, argv[2], &off) || afs_arg_u32(env, argv[3], &flags))
    return NULL;
  if (off < 0) return afs_throw_type(env, "offset must not be negative");
  /* preadv2(fd, views: Uint8Array[], ...): several buffers in order (the pages of a request). */
  if (!write && napi_is_array(env, argv[1], &is_array) == napi_ok && is_array) {
    uint32_t n;
    struct iovec iovs[256];
    if (napi_get_array_length(env, argv[1], &n) != napi_ok || n == 0 || n > 256)
      return afs_throw_type(env, "preadv2: 1..256 views");
    for (uint32_t i = 0; i < n; i++) {
      napi_value v;
      if (napi_get_element(env, argv[1], i, &v) != napi_ok || afs_arg_bytes(env, v, &data, &len)) return NULL;
      iovs[i].iov_base = data;
      iovs[i].iov_len = len;
    }
    ssize_t r = preadv2((int)fd, iovs, (int)n, off, (int)flags);
    return afs_make_i64(env, r < 0 ? -(int64_t)errno : (int64_t)r);
  }
  if (afs_arg_bytes(env, argv[1], &data, &len)) return NULL;
  struct iovec iov = { data, len };
  ssize_t r = write ? pwritev2((int)fd, &iov, 1, off, (int)flags) : preadv2((int)fd, &iov, 1, off, (int)flags);
  return afs_make_i64(env, r < 0 ? -(int64_t)errno : (int64_t)r);
}

static napi_value js_preadv2(napi_env env, napi_callback_info info) { return rw_v2(env, info, 0); }
static napi_value js_pwritev2(napi_env env, napi_callback_info info) { return rw_v2(env, info, 1); }

static void free_finalizer(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/* allocAligned(length, alignment) → zeroed ArrayBuffer at an aligned address (O_DIRECT buffers). */
static napi_value js_alloc_aligned(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t len, align;
  if (afs_args(env, info, 2, argv, "allocAligned(length, alignment)") || afs_arg_i64(env, argv[0], &len) ||
      afs_arg_i64(env, argv[1], &align)) return NULL;
  if (len <= 0 || align <= 0 || (align & (align - 1))) return afs_throw_type(env, "allocAligned: bad length or alignment");
  void *p;
  int r = posix_memalign(&p, (size_t)align, (size_t)len);
  if (r) return afs_throw_errno(env, "posix_memalign", r);
  memset(p, 0, (size_t)len);
  napi_value ab;
  if (napi_create_external_arraybuffer(env, p, (size_t)len, free_finalizer, NULL, &ab) != napi_ok) {
    free(p);
    return afs_throw_errno(env, "napi_create_external_arraybuffer", ENOMEM);
  }
  return ab;
}

int afs_register_file(napi_env env, napi_value exports) {
  static const struct afs_fn fns[] = {
    { "fallocate", js_fallocate }, { "canPunchHole", js_can_punch_hole }, { "mapFile", js_map_file },
    { "allocAligned", js_alloc_aligned }, { "preadv2", js_preadv2 }, { "pwritev2", js_pwritev2 },
  };
  /* The flag value from the headers checked above, so TypeScript never hard-codes it. */
  return afs_set_fns(env, exports, fns, AFS_COUNT(fns)) || afs_set_i32(env, exports, "RWF_NOWAIT", RWF_NOWAIT);
}
