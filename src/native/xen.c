/* Xen device calls for the Linux platform (/dev/xen/evtchn, /dev/xen/gntdev).
 *
 * Deliberately generic: ioctl takes the request number and a byte buffer, so every struct is
 * encoded and decoded in TypeScript (src/xen/linux/uapi.ts); the C never knows a Xen struct.
 * Opening the devices needs no C: Node's fs.openSync already adds O_CLOEXEC. */
#include "addon.h"
#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

/* ioctl(fd, request, arg | null) → the ioctl's non-negative result (evtchn binds return the
 * port). arg is passed by pointer and the kernel may write back into it (MAP_GRANT_REF index,
 * GET_OFFSET_FOR_VADDR). EINTR is retried: every request used here is idempotent. */
static napi_value js_ioctl(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int64_t fd;
  uint32_t req;
  if (afs_args(env, info, 3, argv, "ioctl(fd, request, arg)") || afs_arg_fd(env, argv[0], &fd) ||
      afs_arg_u32(env, argv[1], &req)) return NULL;
  void *data = NULL;
  size_t len = 0;
  napi_valuetype t;
  if (napi_typeof(env, argv[2], &t) != napi_ok) return afs_throw_type(env, "ioctl: unreadable arg");
  if (t != napi_null && t != napi_undefined && afs_arg_bytes(env, argv[2], &data, &len)) return NULL;
  int r;
  do r = ioctl((int)fd, (unsigned long)req, data); while (r < 0 && errno == EINTR);
  if (r < 0) return afs_throw_errno(env, "ioctl", errno);
  return afs_make_i64(env, r);
}

/* The mappings made by mmapShared, so munmapShared can refuse anything else (munmap of a
 * malloc'ed ArrayBuffer would corrupt the heap). Touched only on the JS thread. */
struct mapping { void *addr; size_t len; };
static struct mapping *maps;
static size_t nmaps, capmaps;

static int remember(void *addr, size_t len) {
  if (nmaps == capmaps) {
    size_t cap = capmaps ? capmaps * 2 : 16;
    struct mapping *m = realloc(maps, cap * sizeof *m);
    if (!m) return -1;
    maps = m;
    capmaps = cap;
  }
  maps[nmaps].addr = addr;
  maps[nmaps].len = len;
  nmaps++;
  return 0;
}

static int forget(void *addr, size_t len) {
  for (size_t i = 0; i < nmaps; i++)
    if (maps[i].addr == addr && maps[i].len == len) {
      maps[i] = maps[--nmaps];
      return 0;
    }
  return -1;
}

/* mmapShared(fd, length, offset, writable) → ArrayBuffer over a MAP_SHARED mapping that is NOT
 * unmapped on GC: a gntdev mapping must be unmapped in order (GET_OFFSET_FOR_VADDR, munmap,
 * UNMAP_GRANT_REF), which only the owner can do, through munmapShared. offset is a bigint or a
 * number (gntdev's index). */
static napi_value js_mmap_shared(napi_env env, napi_callback_info info) {
  napi_value argv[4], ab;
  void *p;
  size_t len;
  if (afs_args(env, info, 4, argv, "mmapShared(fd, length, offset, writable)") || afs_mmap_args(env, argv, &p, &len))
    return NULL;
  if (remember(p, len) || napi_create_external_arraybuffer(env, p, len, NULL, NULL, &ab) != napi_ok) {
    forget(p, len);
    munmap(p, len);
    return afs_throw_errno(env, "mmapShared", ENOMEM);
  }
  return ab;
}

/* The buffer's memory (NULL when detached) and length: 0, or -1 with a TypeError pending when v
 * is not an ArrayBuffer. */
static int arraybuffer_arg(napi_env env, napi_value v, void **p, size_t *len, const char *usage) {
  bool is = false;
  if (napi_is_arraybuffer(env, v, &is) != napi_ok || !is || napi_get_arraybuffer_info(env, v, p, len) != napi_ok) {
    afs_throw_type(env, usage);
    return -1;
  }
  return 0;
}

/* munmapShared(ab): munmap and detach, so later JS access sees a zero-length buffer instead of
 * faulting. Only for buffers made by mmapShared (EINVAL otherwise). */
static napi_value js_munmap_shared(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *p;
  size_t len;
  if (afs_args(env, info, 1, argv, "munmapShared(arrayBuffer)") ||
      arraybuffer_arg(env, argv[0], &p, &len, "munmapShared(arrayBuffer)")) return NULL;
  if (forget(p, len)) return afs_throw_errno(env, "munmapShared (not a mapping made by mmapShared)", EINVAL);
  /* Detach first: once unmapped, no JS view may reach the address. */
  if (napi_detach_arraybuffer(env, argv[0]) != napi_ok) {
    remember(p, len);
    return afs_throw_errno(env, "napi_detach_arraybuffer", EINVAL);
  }
  if (munmap(p, len) < 0) return afs_throw_errno(env, "munmap", errno);
  return afs_undefined(env);
}

/* addressOf(ab) → bigint: the user virtual address of an ArrayBuffer's memory, for grant-copy
 * segments and GET_OFFSET_FOR_VADDR. Only meaningful for memory that never moves (allocAligned,
 * mmapShared); the caller keeps the buffer alive while the kernel uses the address. */
static napi_value js_address_of(napi_env env, napi_callback_info info) {
  napi_value argv[1], r;
  void *p;
  size_t len;
  if (afs_args(env, info, 1, argv, "addressOf(arrayBuffer)") ||
      arraybuffer_arg(env, argv[0], &p, &len, "addressOf(arrayBuffer)")) return NULL;
  return napi_create_bigint_uint64(env, (uint64_t)(uintptr_t)p, &r) == napi_ok ? r : NULL;
}

/* fence(): a full memory barrier (xen_mb). Atomics on the ring buffer already order accesses on
 * x86; a port to a weakly ordered CPU calls this where io/ring.h has xen_rmb/xen_wmb/xen_mb. */
static napi_value js_fence(napi_env env, napi_callback_info info) {
  (void)info;
  __sync_synchronize();
  return afs_undefined(env);
}

int afs_register_xen(napi_env env, napi_value exports) {
  static const struct afs_fn fns[] = {
    { "ioctl", js_ioctl }, { "mmapShared", js_mmap_shared }, { "munmapShared", js_munmap_shared },
    { "addressOf", js_address_of }, { "fence", js_fence },
  };
  return afs_set_fns(env, exports, fns, AFS_COUNT(fns));
}
