/* Readiness of a device fd delivered to the JS thread without tying up a libuv pool thread.
 *
 * One dedicated thread per watch polls the fd; when it is readable the thread read()s it (for
 * /dev/xen/evtchn: a batch of pending u32 ports, at most a page) and hands the bytes to JS
 * through a N-API threadsafe function. Only N-API is used, so nothing depends on the libuv ABI
 * of the Node binary the addon is loaded into (see src/xen/linux/README.md for the measured
 * latency and the comparison with libuv's own epoll).
 *
 * After a read error (evtchn: EFBIG on queue overflow, which poll keeps reporting until
 * IOCTL_EVTCHN_RESET) the thread delivers the errno once and pauses until watchRearm, so it
 * never spins. End of file is delivered once and ends the thread. Any fd works, which is how
 * the tests drive it with a pipe.
 *
 * watchFd's third argument selects the other mechanism, uv_poll in the main loop (fdwatch_uv.c);
 * watchRearm/Close/Ref take either kind of handle. */
#include "addon.h"
#include "fdwatch.h"
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum { CTL_REARM = 1, CTL_STOP = 2 };

struct watch {
  int kind;                /* WATCH_THREAD; first, see fdwatch.h */
  int fd;
  int ctl;                 /* eventfd: wakes the thread for rearm / stop */
  atomic_int ctl_bits;     /* CTL_* requested by the JS thread */
  pthread_t thread;
  int thread_started;
  napi_threadsafe_function tsfn;
  int stopped;             /* JS thread only */
  int hook_installed;      /* JS thread only */
};

struct delivery {
  int err;                 /* 0 with len 0: end of file */
  size_t len;
  uint8_t bytes[];
};

static void deliver(struct watch *w, int err, const uint8_t *bytes, size_t len) {
  struct delivery *d = malloc(sizeof *d + len);
  if (!d) return; /* out of memory on a 4 KiB allocation: nothing sensible left to do */
  d->err = err;
  d->len = len;
  if (len) memcpy(d->bytes, bytes, len);
  if (napi_call_threadsafe_function(w->tsfn, d, napi_tsfn_nonblocking) != napi_ok) free(d);
}

static void *watch_thread(void *arg) {
  struct watch *w = arg;
  uint8_t buf[WATCH_READ_MAX];
  int paused = 0;
  for (;;) {
    struct pollfd p[2] = { { w->ctl, POLLIN, 0 }, { w->fd, POLLIN, 0 } };
    int r = poll(p, paused ? 1 : 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      deliver(w, errno, NULL, 0);
      paused = 1;
      continue;
    }
    if (p[0].revents) {
      uint64_t v;
      ssize_t drained = read(w->ctl, &v, sizeof v); /* resets the eventfd counter */
      (void)drained;
      int bits = atomic_exchange(&w->ctl_bits, 0);
      if (bits & CTL_STOP) break;
      if (bits & CTL_REARM) paused = 0;
      continue;
    }
    if (paused || !p[1].revents) continue;
    if (p[1].revents & POLLNVAL) {
      deliver(w, EBADF, NULL, 0);
      paused = 1;
      continue;
    }
    ssize_t n = read(w->fd, buf, sizeof buf);
    if (n > 0) {
      deliver(w, 0, buf, (size_t)n);
    } else if (n == 0) {
      deliver(w, 0, NULL, 0);
      break;
    } else if (errno != EAGAIN && errno != EINTR) {
      deliver(w, errno, NULL, 0);
      paused = 1;
    }
  }
  return NULL;
}

/* Runs on the JS thread: callback(bytes: Uint8Array | null, errno: number). */
static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  struct delivery *d = data;
  if (env == NULL || cb == NULL) { free(d); return; } /* the function is being torn down */
  napi_value args[2], undef;
  if (d->len) {
    void *p;
    napi_value ab;
    napi_create_arraybuffer(env, d->len, &p, &ab);
    memcpy(p, d->bytes, d->len);
    napi_create_typedarray(env, napi_uint8_array, d->len, ab, 0, &args[0]);
  } else {
    napi_get_null(env, &args[0]);
  }
  napi_create_int32(env, d->err, &args[1]);
  free(d);
  napi_get_undefined(env, &undef);
  napi_call_function(env, undef, cb, 2, args, NULL);
}

static void post(struct watch *w, int bit) {
  atomic_fetch_or(&w->ctl_bits, bit);
  uint64_t one = 1;
  while (write(w->ctl, &one, sizeof one) < 0 && errno == EINTR) {}
}

/* Stops the thread (joined, so it never reads the fd after this returns) and releases the
 * threadsafe function. Idempotent. JS thread only. */
static void stop(struct watch *w) {
  if (w->stopped) return;
  w->stopped = 1;
  if (w->thread_started) {
    post(w, CTL_STOP);
    pthread_join(w->thread, NULL);
  }
  close(w->ctl);
  napi_release_threadsafe_function(w->tsfn, napi_tsfn_abort);
}

static void cleanup_hook(void *arg) {
  struct watch *w = arg;
  w->hook_installed = 0;
  stop(w);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)hint;
  struct watch *w = data;
  if (w->hook_installed) {
    napi_remove_env_cleanup_hook(env, cleanup_hook, w);
    w->hook_installed = 0;
  }
  stop(w);
  free(w);
}

/* Either mechanism's handle: both start with their kind. */
static int *get_handle(napi_env env, napi_value v) {
  int *kind = NULL;
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_external || napi_get_value_external(env, v, (void **)&kind) != napi_ok || !kind) {
    afs_throw_type(env, "expected a watch handle from watchFd");
    return NULL;
  }
  return kind;
}

/* watchFd(fd, callback, uvPoll = false) → handle. The fd is not owned: close it only after
 * watchClose. uvPoll selects fdwatch_uv.c instead of the thread. */
static napi_value js_watch_fd(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t fd;
  napi_valuetype t;
  int uv_poll = 0;
  if (argc < 2 || afs_arg_i64(env, argv[0], &fd)) return afs_throw_type(env, "watchFd(fd, callback, uvPoll?)");
  napi_typeof(env, argv[1], &t);
  if (t != napi_function) return afs_throw_type(env, "watchFd: callback must be a function");
  if (argc > 2) {
    napi_typeof(env, argv[2], &t);
    if (t != napi_undefined && afs_arg_bool(env, argv[2], &uv_poll)) return NULL;
  }
  if (uv_poll) return fd < 0 || fd > INT32_MAX ? afs_throw_errno(env, "watchFd", EBADF) : afs_uvwatch_fd(env, (int)fd, argv[1]);
  struct watch *w = calloc(1, sizeof *w);
  if (!w) return afs_throw_errno(env, "watchFd", ENOMEM);
  w->kind = WATCH_THREAD;
  w->fd = (int)fd;
  w->ctl = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (w->ctl < 0) {
    int e = errno;
    free(w);
    return afs_throw_errno(env, "eventfd", e);
  }
  napi_value name;
  napi_create_string_utf8(env, "afsfile.watchFd", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &w->tsfn) != napi_ok) {
    close(w->ctl);
    free(w);
    return afs_throw_errno(env, "napi_create_threadsafe_function", ENOMEM);
  }
  int e = pthread_create(&w->thread, NULL, watch_thread, w);
  if (e) {
    w->stopped = 1;
    close(w->ctl);
    napi_release_threadsafe_function(w->tsfn, napi_tsfn_abort);
    free(w);
    return afs_throw_errno(env, "pthread_create", e);
  }
  w->thread_started = 1;
  napi_add_env_cleanup_hook(env, cleanup_hook, w);
  w->hook_installed = 1;
  napi_value handle;
  napi_create_external(env, w, finalize_handle, NULL, &handle);
  return handle;
}

/* watchRearm(handle): resume after a delivered read error. */
static napi_value js_watch_rearm(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int *kind = argc ? get_handle(env, argv[0]) : NULL;
  if (!kind) return argc ? NULL : afs_throw_type(env, "watchRearm(handle)");
  if (*kind == WATCH_UVPOLL) {
    int r = afs_uvwatch_rearm(kind);
    return r ? afs_throw_errno(env, "uv_poll_start", -r) : afs_undefined(env);
  }
  struct watch *w = (struct watch *)kind;
  if (!w->stopped) post(w, CTL_REARM);
  return afs_undefined(env);
}

/* watchClose(handle): stop and join the thread; no callback runs afterwards. Idempotent. */
static napi_value js_watch_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int *kind = argc ? get_handle(env, argv[0]) : NULL;
  if (!kind) return argc ? NULL : afs_throw_type(env, "watchClose(handle)");
  if (*kind == WATCH_UVPOLL) {
    afs_uvwatch_close(env, kind);
    return afs_undefined(env);
  }
  struct watch *w = (struct watch *)kind;
  if (w->hook_installed) {
    napi_remove_env_cleanup_hook(env, cleanup_hook, w);
    w->hook_installed = 0;
  }
  stop(w);
  return afs_undefined(env);
}

/* watchRef(handle, ref): whether the watch keeps the event loop alive (default true). */
static napi_value js_watch_ref(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int ref;
  int *kind = argc == 2 ? get_handle(env, argv[0]) : NULL;
  if (!kind) return argc == 2 ? NULL : afs_throw_type(env, "watchRef(handle, ref)");
  if (afs_arg_bool(env, argv[1], &ref)) return NULL;
  if (*kind == WATCH_UVPOLL) {
    afs_uvwatch_ref(kind, ref);
    return afs_undefined(env);
  }
  struct watch *w = (struct watch *)kind;
  if (!w->stopped) {
    if (ref) napi_ref_threadsafe_function(env, w->tsfn);
    else napi_unref_threadsafe_function(env, w->tsfn);
  }
  return afs_undefined(env);
}

void afs_register_fdwatch(napi_env env, napi_value exports) {
  afs_set_fn(env, exports, "watchFd", js_watch_fd);
  afs_set_fn(env, exports, "watchRearm", js_watch_rearm);
  afs_set_fn(env, exports, "watchClose", js_watch_close);
  afs_set_fn(env, exports, "watchRef", js_watch_ref);
}
