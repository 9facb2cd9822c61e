/* Module entry and argument helpers of the afsfile addon. */
#include "addon.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <string.h>

napi_value afs_throw_errno(napi_env env, const char *op, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", op, strerror(err));
  napi_value m, e, n, s;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m) != napi_ok ||
      napi_create_error(env, NULL, m, &e) != napi_ok) {
    napi_throw_error(env, NULL, msg); /* the plainer error, still an exception */
    return NULL;
  }
  /* errno and syscall are extras: without them the message still says it all. */
  if (napi_create_int32(env, err, &n) == napi_ok) napi_set_named_property(env, e, "errno", n);
  if (napi_create_string_utf8(env, op, NAPI_AUTO_LENGTH, &s) == napi_ok) napi_set_named_property(env, e, "syscall", s);
  napi_throw(env, e);
  return NULL;
}

napi_value afs_throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

int afs_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage) {
  napi_value all[8];
  size_t argc = 8;
  if (n > 8 || napi_get_cb_info(env, info, &argc, all, NULL, NULL) != napi_ok || argc < n) {
    afs_throw_type(env, usage);
    return -1;
  }
  for (size_t i = 0; i < n; i++) argv[i] = all[i];
  return 0;
}

int afs_arg_i64(napi_env env, napi_value v, int64_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) t = napi_undefined;
  if (t == napi_bigint) {
    bool lossless;
    if (napi_get_value_bigint_int64(env, v, out, &lossless) == napi_ok && lossless) return 0;
  } else if (t == napi_number) {
    double d;
    /* Range first: converting a double outside int64_t's range (or NaN) is undefined behaviour.
     * 2^63 is exact as a double; every double in [-2^63, 2^63) with no fraction converts. */
    if (napi_get_value_double(env, v, &d) == napi_ok && d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
        d == (double)(int64_t)d) {
      *out = (int64_t)d;
      return 0;
    }
  }
  afs_throw_type(env, "expected an integer");
  return -1;
}

int afs_arg_fd(napi_env env, napi_value v, int64_t *out) {
  if (afs_arg_i64(env, v, out)) return -1;
  /* A negative fd goes on to the kernel, which answers EBADF as for a closed one. */
  if (*out < INT32_MIN || *out > INT32_MAX) { afs_throw_type(env, "expected a file descriptor"); return -1; }
  return 0;
}

int afs_arg_u32(napi_env env, napi_value v, uint32_t *out) {
  int64_t x;
  if (afs_arg_i64(env, v, &x)) return -1;
  if (x < 0 || x > 0xffffffffLL) { afs_throw_type(env, "expected a 32-bit unsigned integer"); return -1; }
  *out = (uint32_t)x;
  return 0;
}

int afs_arg_bool(napi_env env, napi_value v, int *out) {
  bool b;
  if (napi_get_value_bool(env, v, &b) != napi_ok) { afs_throw_type(env, "expected a boolean"); return -1; }
  *out = b;
  return 0;
}

int afs_arg_bytes(napi_env env, napi_value v, void **data, size_t *len) {
  bool is;
  if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
    if (napi_get_arraybuffer_info(env, v, data, len) == napi_ok) return 0;
    afs_throw_type(env, "unreadable ArrayBuffer");
    return -1;
  }
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t n, off;
    napi_value ab;
    void *base;
    if (napi_get_typedarray_info(env, v, &type, &n, &base, &ab, &off) != napi_ok) {
      afs_throw_type(env, "unreadable typed array");
      return -1;
    }
    size_t el = 1;
    switch (type) {
      case napi_int16_array: case napi_uint16_array: el = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: el = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: el = 8; break;
      default: el = 1;
    }
    *data = base;
    *len = n * el;
    return 0;
  }
  if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    napi_value ab;
    size_t off;
    if (napi_get_dataview_info(env, v, len, data, &ab, &off) == napi_ok) return 0;
    afs_throw_type(env, "unreadable DataView");
    return -1;
  }
  afs_throw_type(env, "expected an ArrayBuffer or a typed array");
  return -1;
}

/* The makers return NULL with an exception pending when N-API fails (out of memory). */
napi_value afs_undefined(napi_env env) {
  napi_value u;
  return napi_get_undefined(env, &u) == napi_ok ? u : NULL;
}

napi_value afs_make_i64(napi_env env, int64_t v) {
  napi_value r;
  return napi_create_int64(env, v, &r) == napi_ok ? r : NULL;
}

napi_value afs_make_bool(napi_env env, int v) {
  napi_value r;
  return napi_get_boolean(env, v != 0, &r) == napi_ok ? r : NULL;
}

int afs_mmap_args(napi_env env, const napi_value *argv, void **addr, size_t *len) {
  int64_t fd, length, off;
  int writable;
  if (afs_arg_fd(env, argv[0], &fd) || afs_arg_i64(env, argv[1], &length) || afs_arg_i64(env, argv[2], &off) ||
      afs_arg_bool(env, argv[3], &writable)) return -1;
  if (length <= 0 || off < 0) {
    afs_throw_type(env, "mmap: length must be positive, offset not negative");
    return -1;
  }
  /* Signals held off for the call: a gntdev mapping of a foreign ring can fail with EINTR when a
   * signal arrives meanwhile (seen with the CPU profiler's SIGPROF under Xen in QEMU), and the
   * device then gives up on the ring. Held, they are delivered right after; EINTR all the same
   * (a signal that cannot be held) is tried again a few times, as the mapping is undone on
   * failure (drivers/xen/gntdev.c gntdev_mmap). */
  sigset_t all, old;
  sigfillset(&all);
  int masked = pthread_sigmask(SIG_BLOCK, &all, &old) == 0;
  void *p;
  int tries = 0, err;
  do p = mmap(NULL, (size_t)length, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, (int)fd, (off_t)off);
  while (p == MAP_FAILED && (err = errno) == EINTR && ++tries < 5);
  if (p == MAP_FAILED) err = errno;
  if (masked) pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (p == MAP_FAILED) {
    afs_throw_errno(env, "mmap", err);
    return -1;
  }
  *addr = p;
  *len = (size_t)length;
  return 0;
}

int afs_set_fns(napi_env env, napi_value exports, const struct afs_fn *fns, size_t n) {
  for (size_t i = 0; i < n; i++) {
    napi_value fn;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) return -1;
  }
  return 0;
}

int afs_set_i32(napi_env env, napi_value exports, const char *name, int32_t value) {
  napi_value v;
  return napi_create_int32(env, value, &v) == napi_ok &&
         napi_set_named_property(env, exports, name, v) == napi_ok ? 0 : -1;
}

static napi_value init(napi_env env, napi_value exports) {
  /* A missing export fails loudly at load, not at first use. */
  if (afs_register_file(env, exports) || afs_register_xen(env, exports) || afs_register_fdwatch(env, exports) ||
      afs_register_uring(env, exports) || afs_register_pool(env, exports) || afs_register_openat2(env, exports) ||
      afs_register_lock(env, exports) || afs_register_thread_op(env, exports) ||
      afs_set_i32(env, exports, "abiVersion", 1)) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GMODULE_NAME, init)
