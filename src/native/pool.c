/* The grant-copy pool's memory: an anonymous private mapping whose pages cost nothing until
 * first touched (Linux maps the shared zero page or faults a fresh page in on demand), and a
 * release that gives touched pages back to the kernel when nothing is in flight
 * (madvise(MADV_DONTNEED): later reads of a private anonymous range see zeros, mm/madvise.c).
 * posix_memalign + memset made every page resident at allocation and kept it for good. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>
#include "addon.h"

static void pool_finalizer(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

/* mapPool(length) → ArrayBuffer over fresh anonymous memory (page-aligned, reads as zero),
 * unmapped when collected. MAP_NORESERVE: no commit charge for pages never touched. */
static napi_value js_map_pool(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t len;
  if (afs_args(env, info, 1, argv, "mapPool(length)") || afs_arg_i64(env, argv[0], &len)) return NULL;
  long page = sysconf(_SC_PAGESIZE);
  if (len <= 0 || len % page)
    return afs_throw_type(env, "mapPool: length must be a positive multiple of the page size");
  void *p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return afs_throw_errno(env, "mmap(pool)", errno);
  napi_value ab;
  if (napi_create_external_arraybuffer(env, p, (size_t)len, pool_finalizer, (void *)(uintptr_t)len, &ab) != napi_ok) {
    munmap(p, (size_t)len);
    return afs_throw_errno(env, "napi_create_external_arraybuffer", ENOMEM);
  }
  return ab;
}

/* releasePages(arrayBuffer, offset, length): madvise(MADV_DONTNEED) on whole pages of a mapPool
 * buffer; the range reads as zeros afterwards and costs no memory until touched again. */
static napi_value js_release_pages(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  void *data;
  size_t size;
  int64_t off, len;
  if (afs_args(env, info, 3, argv, "releasePages(arrayBuffer, offset, length)") ||
      afs_arg_bytes(env, argv[0], &data, &size) || afs_arg_i64(env, argv[1], &off) || afs_arg_i64(env, argv[2], &len))
    return NULL;
  long page = sysconf(_SC_PAGESIZE);
  if (off < 0 || len < 0 || off % page || len % page || (uint64_t)(off + len) > size ||
      ((uintptr_t)data) % (uintptr_t)page)
    return afs_throw_type(env, "releasePages: whole pages inside a mapPool buffer");
  if (len > 0 && madvise((char *)data + off, (size_t)len, MADV_DONTNEED))
    return afs_throw_errno(env, "madvise(MADV_DONTNEED)", errno);
  return afs_undefined(env);
}

/* trimMalloc(): malloc_trim(0), which returns the free memory of every malloc arena to the
 * kernel (glibc malloc/malloc.c: since 2.8 it walks all arenas and madvises free pages). The
 * libuv and V8 threads each get an arena; after a burst their freed memory stays resident
 * until trimmed. Returns whether anything was released. */
static napi_value js_trim_malloc(napi_env env, napi_callback_info info) {
  (void)info;
  return afs_make_bool(env, malloc_trim(0));
}

int afs_register_pool(napi_env env, napi_value exports) {
  static const struct afs_fn fns[] = {
    { "trimMalloc", js_trim_malloc }, { "mapPool", js_map_pool }, { "releasePages", js_release_pages },
  };
  return afs_set_fns(env, exports, fns, AFS_COUNT(fns));
}
