/* Opening an image confined beneath a directory: openat2(2) (Linux 5.6, <linux/openat2.h>),
 * which Node lacks. The walk happens in one system call, so no directory swapped for a symlink
 * meanwhile can lead the open elsewhere (RESOLVE_BENEATH refuses absolute symlinks and any
 * ".." that would leave the directory, with EXDEV: fs/namei.c, Documentation of openat2(2)).
 * Also fcntl(F_SETFL) to drop O_NONBLOCK once the file is known to be a regular file. */
#include "addon.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437 /* the same number on every architecture (include/uapi/asm-generic/unistd.h) */
#endif

/* Opens `root` (a directory, symlinks followed: the administrator named it), then `rel` beneath
 * it with openat2; root NULL: `rel` from the working directory. The fd, or a negative errno;
 * *step says which call failed (0 the root, 1 openat2). */
int afs_open_beneath(const char *root, const char *rel, int flags, uint64_t resolve, int *step) {
  int dir = AT_FDCWD;
  *step = 0;
  if (root) {
    do dir = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC); while (dir < 0 && errno == EINTR);
    if (dir < 0) return -errno;
  }
  *step = 1;
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (uint64_t)(unsigned)(flags | O_CLOEXEC);
  how.resolve = resolve;
  long fd;
  do fd = syscall(SYS_openat2, dir, rel, &how, sizeof how); while (fd < 0 && errno == EINTR);
  int err = errno;
  if (dir >= 0) close(dir);
  return fd < 0 ? -err : (int)fd;
}

/* Reads (root | null, rel, flags, resolve) from argv; 0, else a TypeError is pending. The
 * strings are malloc'ed: free both. */
int afs_read_open_args(napi_env env, const napi_value *argv, char **root, char **rel, uint32_t *flags,
                          uint32_t *resolve) {
  *root = *rel = NULL;
  napi_valuetype t;
  if (napi_typeof(env, argv[0], &t) != napi_ok) return afs_throw_type(env, "openBeneath: unreadable root"), -1;
  char *strs[2] = { NULL, NULL };
  for (int i = t == napi_null ? 1 : 0; i < 2; i++) {
    size_t n;
    if (napi_get_value_string_utf8(env, argv[i], NULL, 0, &n) != napi_ok) {
      free(strs[0]);
      afs_throw_type(env, "openBeneath(root: string | null, rel: string, flags, resolve)");
      return -1;
    }
    strs[i] = malloc(n + 1);
    if (!strs[i] || napi_get_value_string_utf8(env, argv[i], strs[i], n + 1, &n) != napi_ok || strlen(strs[i]) != n) {
      free(strs[0]);
      free(strs[1]);
      afs_throw_type(env, "openBeneath: a path with a NUL byte, or out of memory");
      return -1;
    }
  }
  if (afs_arg_u32(env, argv[2], flags) || afs_arg_u32(env, argv[3], resolve)) {
    free(strs[0]);
    free(strs[1]);
    return -1;
  }
  *root = strs[0];
  *rel = strs[1];
  return 0;
}

static napi_value open_error(napi_env env, int step, int err) {
  return afs_throw_errno(env, step == 0 ? "open(root)" : "openat2", err);
}

/* openBeneath(root | null, rel, flags, resolve) → fd; throws an errno error whose syscall is
 * "open(root)" or "openat2" (ENOSYS: a kernel before 5.6, or a seccomp filter). */
static napi_value js_open_beneath(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char *root, *rel;
  uint32_t flags, resolve;
  if (afs_args(env, info, 4, argv, "openBeneath(root, rel, flags, resolve)") ||
      afs_read_open_args(env, argv, &root, &rel, &flags, &resolve)) return NULL;
  int step;
  int fd = afs_open_beneath(root, rel, (int)flags, resolve, &step);
  free(root);
  free(rel);
  if (fd < 0) return open_error(env, step, -fd);
  return afs_make_i64(env, fd);
}

/* The same on a libuv pool thread: an open on a hung file server must not stall the loop. */
struct open_work {
  napi_async_work work;
  napi_ref cb;
  char *root, *rel;
  uint32_t flags, resolve;
  int fd, step;
};

static void open_execute(napi_env env, void *data) {
  (void)env;
  struct open_work *w = data;
  w->fd = afs_open_beneath(w->root, w->rel, (int)w->flags, w->resolve, &w->step);
}

/* cb(errno, fd): errno 0 with the fd, else the errno and the failed step's name as a third
 * argument ("open(root)" or "openat2"). */
static void open_complete(napi_env env, napi_status status, void *data) {
  struct open_work *w = data;
  napi_value cb, global, args[3];
  int err = status == napi_ok ? (w->fd < 0 ? -w->fd : 0) : ECANCELED;
  if (napi_get_reference_value(env, w->cb, &cb) == napi_ok && napi_get_global(env, &global) == napi_ok &&
      napi_create_int32(env, err, &args[0]) == napi_ok &&
      napi_create_int32(env, err ? -1 : w->fd, &args[1]) == napi_ok &&
      napi_create_string_utf8(env, w->step == 0 ? "open(root)" : "openat2", NAPI_AUTO_LENGTH, &args[2]) == napi_ok) {
    napi_call_function(env, global, cb, 3, args, NULL);
  } else if (w->fd >= 0) {
    close(w->fd);
  }
  napi_delete_reference(env, w->cb);
  napi_delete_async_work(env, w->work);
  free(w->root);
  free(w->rel);
  free(w);
}

static napi_value js_open_beneath_async(napi_env env, napi_callback_info info) {
  napi_value argv[5], name;
  struct open_work *w = calloc(1, sizeof *w);
  if (!w) return afs_throw_errno(env, "openBeneathAsync", ENOMEM);
  if (afs_args(env, info, 5, argv, "openBeneathAsync(root, rel, flags, resolve, cb)") ||
      afs_read_open_args(env, argv, &w->root, &w->rel, &w->flags, &w->resolve)) {
    free(w);
    return NULL;
  }
  if (napi_create_reference(env, argv[4], 1, &w->cb) != napi_ok ||
      napi_create_string_utf8(env, "afsfile:openBeneath", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, open_execute, open_complete, w, &w->work) != napi_ok ||
      napi_queue_async_work(env, w->work) != napi_ok) {
    free(w->root);
    free(w->rel);
    free(w);
    return afs_throw_type(env, "openBeneathAsync: cannot queue the open");
  }
  return afs_undefined(env);
}

/* clearNonblock(fd): fcntl(F_SETFL) without O_NONBLOCK. An io_uring request on an O_NONBLOCK
 * file that would block completes with EAGAIN instead of going to io-wq (io_uring/rw.c). */
static napi_value js_clear_nonblock(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t fd;
  if (afs_args(env, info, 1, argv, "clearNonblock(fd)") || afs_arg_fd(env, argv[0], &fd)) return NULL;
  int fl = fcntl((int)fd, F_GETFL);
  if (fl < 0) return afs_throw_errno(env, "fcntl(F_GETFL)", errno);
  if ((fl & O_NONBLOCK) && fcntl((int)fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
    return afs_throw_errno(env, "fcntl(F_SETFL)", errno);
  return afs_undefined(env);
}

int afs_register_openat2(napi_env env, napi_value exports) {
  static const struct afs_fn fns[] = {
    { "openBeneath", js_open_beneath },
    { "openBeneathAsync", js_open_beneath_async },
    { "clearNonblock", js_clear_nonblock },
  };
  return afs_set_fns(env, exports, fns, AFS_COUNT(fns)) ||
         afs_set_i32(env, exports, "RESOLVE_BENEATH", RESOLVE_BENEATH) ||
         afs_set_i32(env, exports, "RESOLVE_NO_MAGICLINKS", RESOLVE_NO_MAGICLINKS) ? -1 : 0;
}
