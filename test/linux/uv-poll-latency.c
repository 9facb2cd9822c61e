/* Measurement only (test/linux/fdwatch.test.ts), never shipped: the alternative to the poll
 * thread, uv_poll on the fd in the main loop. Needs Debian's libuv1-dev headers and relies on
 * the libuv ABI of whichever Node loads it, which is why src/native does not do this.
 * watch(fd, callback) → callback() after each read() of the fd; close(). One watch at a time. */
#include <node_api.h>
#include <uv.h>
#include <stdint.h>
#include <unistd.h>

static uv_poll_t poller;
static napi_ref callback;
static napi_async_context actx;
static napi_env genv;
static int fd_watched = -1;

static void on_ready(uv_poll_t *h, int status, int events) {
  (void)h; (void)status; (void)events;
  uint8_t buf[4096];
  if (read(fd_watched, buf, sizeof buf) <= 0) return;
  napi_handle_scope scope;
  napi_open_handle_scope(genv, &scope);
  napi_value cb, recv;
  napi_get_reference_value(genv, callback, &cb);
  napi_get_undefined(genv, &recv);
  /* make_callback runs the microtasks afterwards, as a real addon must for promise users. */
  napi_make_callback(genv, actx, recv, cb, 0, NULL, NULL);
  napi_close_handle_scope(genv, scope);
}

static napi_value watch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  napi_get_value_int32(env, argv[0], &fd);
  genv = env;
  fd_watched = fd;
  napi_create_reference(env, argv[1], 1, &callback);
  napi_value name;
  napi_create_string_utf8(env, "uvpoll", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &actx);
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  uv_poll_init(loop, &poller, fd);
  uv_poll_start(&poller, UV_READABLE, on_ready);
  return NULL;
}

static napi_value stop(napi_env env, napi_callback_info info) {
  (void)info;
  uv_poll_stop(&poller);
  uv_close((uv_handle_t *)&poller, NULL);
  napi_delete_reference(env, callback);
  napi_async_destroy(env, actx);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value f;
  napi_create_function(env, "watch", NAPI_AUTO_LENGTH, watch, NULL, &f);
  napi_set_named_property(env, exports, "watch", f);
  napi_create_function(env, "close", NAPI_AUTO_LENGTH, stop, NULL, &f);
  napi_set_named_property(env, exports, "close", f);
  return exports;
}

NAPI_MODULE(NODE_GMODULE_NAME, init)
