/* File calls Node lacks: fallocate (hole punching and its probe) and shared mmap of a file. */
#include "addon.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void afs_register_file_more(napi_env env, napi_value exports);

/* fallocate(fd, mode, offset, length): mode bits as in <linux/falloc.h>. */
static napi_value js_fallocate(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4) return afs_throw_type(env, "fallocate(fd, mode, offset, length)");
  int64_t fd, mode, off, len;
  if (afs_arg_i64(env, argv[0], &fd) || afs_arg_i64(env, argv[1], &mode) ||
      afs_arg_i64(env, argv[2], &off) || afs_arg_i64(env, argv[3], &len)) return NULL;
  int r;
  do r = fallocate((int)fd, (int)mode, off, len); while (r < 0 && errno == EINTR);
  if (r < 0) return afs_throw_errno(env, "fallocate", errno);
  return afs_undefined(env);
}

/* Punch-hole probe: a hole past the end of the file changes nothing where holes are
 * supported and fails with EOPNOTSUPP where they are not (OpenAFS, tmpfs on old kernels). */
static napi_value js_can_punch_hole(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t fd;
  if (argc < 1 || afs_arg_i64(env, argv[0], &fd)) return NULL;
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
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4) return afs_throw_type(env, "mapFile(fd, length, offset, writable)");
  int64_t fd, len, off;
  int writable;
  if (afs_arg_i64(env, argv[0], &fd) || afs_arg_i64(env, argv[1], &len) ||
      afs_arg_i64(env, argv[2], &off) || afs_arg_bool(env, argv[3], &writable)) return NULL;
  if (len <= 0) return afs_throw_type(env, "mapFile: length must be positive");
  void *p = mmap(NULL, (size_t)len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, (int)fd, off);
  if (p == MAP_FAILED) return afs_throw_errno(env, "mmap", errno);
  napi_value ab;
  if (napi_create_external_arraybuffer(env, p, (size_t)len, unmap_finalizer, (void *)(uintptr_t)len, &ab) != napi_ok) {
    munmap(p, (size_t)len);
    return afs_throw_errno(env, "napi_create_external_arraybuffer", ENOMEM);
  }
  return ab;
}

void afs_register_file(napi_env env, napi_value exports) {
  afs_set_fn(env, exports, "fallocate", js_fallocate);
  afs_set_fn(env, exports, "canPunchHole", js_can_punch_hole);
  afs_set_fn(env, exports, "mapFile", js_map_file);
  afs_register_file_more(env, exports);
}

static void free_finalizer(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/* allocAligned(length, alignment) → zeroed ArrayBuffer at an aligned address (O_DIRECT buffers). */
static napi_value js_alloc_aligned(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t len, align;
  if (argc < 2 || afs_arg_i64(env, argv[0], &len) || afs_arg_i64(env, argv[1], &align)) return NULL;
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

void afs_register_file_more(napi_env env, napi_value exports) {
  afs_set_fn(env, exports, "allocAligned", js_alloc_aligned);
}
