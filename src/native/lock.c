/* The cell-wide image lock (src/image/lock.ts): a close-on-exec dup (the lock belongs to the open
 * file description, which the dup keeps alive), and taking an open file from another living
 * process with pidfd_getfd(2) (Linux >= 5.6), so that a restarted worker adopts a held lock
 * rather than locking again. flock(2) and F_GETLK, calls to the server on AFS and NFS which may
 * hang, run on threads of their own (thread-op.c). */
#include "addon.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434   /* the same number on every architecture (asm-generic/unistd.h) */
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef PR_SET_PTRACER
#define PR_SET_PTRACER 0x59616d61 /* <linux/prctl.h>: Yama */
#endif
#ifndef PR_SET_PTRACER_ANY
#define PR_SET_PTRACER_ANY ((unsigned long)-1)
#endif

/* dupCloexec(fd) -> a new fd on the same open file description, close-on-exec. */
static napi_value js_dup_cloexec(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t fd;
  if (afs_args(env, info, 1, argv, "dupCloexec(fd)") || afs_arg_fd(env, argv[0], &fd)) return NULL;
  int r = fcntl((int)fd, F_DUPFD_CLOEXEC, 3);
  if (r < 0) return afs_throw_errno(env, "fcntl(F_DUPFD_CLOEXEC)", errno);
  return afs_make_i64(env, r);
}

/* pidfdOpen(pid) -> a pidfd (close-on-exec by the kernel). */
static napi_value js_pidfd_open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t pid;
  if (afs_args(env, info, 1, argv, "pidfdOpen(pid)") || afs_arg_i64(env, argv[0], &pid)) return NULL;
  if (pid <= 0 || pid > INT32_MAX) return afs_throw_type(env, "pidfdOpen: bad pid");
  long r = syscall(SYS_pidfd_open, (int)pid, 0);
  if (r < 0) return afs_throw_errno(env, "pidfd_open", errno);
  return afs_make_i64(env, r);
}

/* pidfdGetfd(pidfd, fd) -> a copy of the target's fd here (close-on-exec by the kernel). Needs
 * ptrace access to the target (PTRACE_MODE_ATTACH_REALCREDS): same uid, and Yama's scope. */
static napi_value js_pidfd_getfd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t pidfd, fd;
  if (afs_args(env, info, 2, argv, "pidfdGetfd(pidfd, fd)") || afs_arg_fd(env, argv[0], &pidfd) ||
      afs_arg_fd(env, argv[1], &fd)) return NULL;
  long r = syscall(SYS_pidfd_getfd, (int)pidfd, (int)fd, 0);
  if (r < 0) return afs_throw_errno(env, "pidfd_getfd", errno);
  return afs_make_i64(env, r);
}

/* allowPtraceAny() -> 0 or an errno: under Yama ptrace_scope 1 only ancestors may take our
 * files; a process waiting for its successor to adopt its lock lets any (same-uid) one. EINVAL
 * without Yama: nothing to allow. */
static napi_value js_allow_ptrace_any(napi_env env, napi_callback_info info) {
  (void)info;
  int r = prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
  return afs_make_i64(env, r < 0 ? errno : 0);
}

int afs_register_lock(napi_env env, napi_value exports) {
  static const struct afs_fn fns[] = {
    { "dupCloexec", js_dup_cloexec }, { "pidfdOpen", js_pidfd_open },
    { "pidfdGetfd", js_pidfd_getfd }, { "allowPtraceAny", js_allow_ptrace_any },
  };
  return afs_set_fns(env, exports, fns, AFS_COUNT(fns)) || afs_set_i32(env, exports, "LOCK_SH", LOCK_SH) ||
         afs_set_i32(env, exports, "LOCK_EX", LOCK_EX) || afs_set_i32(env, exports, "LOCK_NB", LOCK_NB) ||
         afs_set_i32(env, exports, "GETLK", AFS_OP_GETLK) ? -1 : 0;
}
