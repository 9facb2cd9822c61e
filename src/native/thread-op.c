/* The calls of an image's open, lock (flock, F_GETLK), fstat and close, each on a thread of its own: a detached pthread
 * per call, its result handed to the loop through one uv_async_t. On AFS or NFS each of these
 * can wait for a file server for minutes; on libuv's thread pool (4 threads by default) a few
 * hung images would hold every pool thread, and a device host's other disks would wait for
 * their opens and closes behind them. Detached threads are never joined: Node's exit joins the
 * pool's threads (uv_library_shutdown), not these, so a hung call does not keep the process
 * from ending (the kernel may still hold a thread that waits uninterruptibly, as FUSE does once
 * its daemon took the request: fs/fuse/dev.c request_wait_answer).
 *
 * The open does everything the worker needs of the new file on that thread, so nothing after it
 * walks a path or asks the file system on the loop: stat of the path first when no image root
 * confines it (a device node or FIFO is refused before any open), openat2 (openat2.c), fstat
 * (a regular file only), O_NONBLOCK cleared, where the file is (/proc/self/fd), fstatfs (the
 * file system's magic) and, for a writable image, the hole-punch probe (as canPunchHole).
 *
 * A waiting flock (threadFlockWait) is the one call here that may be given up: the thread takes
 * the cancel signal (WAIT_SIGNAL, a no-op handler without SA_RESTART), so that pthread_kill makes
 * flock(2) return EINTR (Linux fs/locks.c and kAFS fs/afs/flock.c both wait with
 * wait_event_interruptible). A signal sent just before the thread enters flock is lost: the
 * loop sends it again (thread-io.ts) until the call has answered.
 *
 * A lock keeper's start and a question to it (lock-keeper.c) run here too: the keeper's first
 * answer waits for its flock, which asks the file server. */
#include "addon.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <uv.h>

enum { OP_OPEN, OP_FLOCK, OP_FSTAT, OP_CLOSE, OP_FLOCK_WAIT, OP_KEEPER, OP_KEEPER_ASK };
/* threadOpen's `how` bits. */
enum { HOW_STAT_FIRST = 1, HOW_PUNCH_PROBE = 2 };
#define THREAD_STACK (256 * 1024)

struct ctx;

struct op {
  struct op *next;
  struct ctx *ctx;
  int kind;
  napi_ref cb;
  napi_async_context actx;
  /* in */
  char *root, *rel;
  uint32_t flags, resolve, how;
  int fd, arg;
  /* out */
  int err;
  const char *syscall;
  int out_fd;
  struct stat st;
  int64_t magic;
  int punch;
  int pid; /* a lock keeper's */
  char real[PATH_MAX];
  /* OP_FLOCK_WAIT, under ctx->mu: its id, its thread once it runs, whether it was given up, and
   * its place in ctx->waiting until the thread has left flock for good. */
  uint32_t id;
  int started, cancel;
  pthread_t tid;
  struct op *wnext;
};

/* One per Node environment, kept as the addon's instance data (no other file uses it).
 * `threads` and `done` are shared with the threads (under mu); `live` (calls not yet
 * answered, for the loop's reference) is the loop thread's alone. */
struct ctx {
  napi_env env;
  uv_async_t async;
  pthread_mutex_t mu;
  struct op *done;
  int threads;
  int gone;         /* the environment is being torn down: threads free their op */
  int closed;       /* uv_close's callback ran: the last thread frees ctx */
  int live;
  struct op *waiting; /* OP_FLOCK_WAIT calls not answered yet (under mu) */
  uint32_t next_id;   /* the loop thread's alone */
};

/* The signal that interrupts a waiting flock: a real-time one nothing else here uses (glibc's
 * SIGRTMIN already leaves out the ones it keeps for itself). */
#define WAIT_SIGNAL (SIGRTMIN + 4)

static void on_wait_signal(int sig) { (void)sig; }

static int wait_signal_failed;

static void wait_signal_init(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_wait_signal;
  sigemptyset(&sa.sa_mask);
  wait_signal_failed = sigaction(WAIT_SIGNAL, &sa, NULL) < 0;
}

/* Once per process, before the first waiting flock: no SA_RESTART, so the call ends with EINTR. */
static int wait_signal_ready(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, wait_signal_init);
  return wait_signal_failed ? -1 : 0;
}

/* Removes o from ctx->waiting (under mu). */
static void unlist_waiting(struct ctx *c, struct op *o) {
  for (struct op **p = &c->waiting; *p; p = &(*p)->wnext) {
    if (*p == o) { *p = o->wnext; o->wnext = NULL; return; }
  }
}

/* flock(2) that waits, until granted, refused with another error, or given up (EINTR). */
static void run_flock_wait(struct op *o) {
  struct ctx *c = o->ctx;
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, WAIT_SIGNAL);
  pthread_mutex_lock(&c->mu);
  o->tid = pthread_self();
  o->started = 1;
  int cancelled = o->cancel;
  pthread_mutex_unlock(&c->mu);
  o->err = EINTR;
  if (cancelled) return;
  pthread_sigmask(SIG_UNBLOCK, &s, NULL);
  for (;;) {
    if (flock(o->fd, o->arg) == 0) { o->err = 0; break; }
    if (errno != EINTR) { o->err = errno; break; }
    pthread_mutex_lock(&c->mu);
    cancelled = o->cancel;
    pthread_mutex_unlock(&c->mu);
    if (cancelled) break; /* else another signal: wait again */
  }
  /* Blocked again before the thread leaves the list: a signal sent later stays pending here and
   * is dropped with the thread. */
  pthread_sigmask(SIG_BLOCK, &s, NULL);
}

static void free_op(napi_env env, struct op *o) {
  if (env) {
    if (o->cb) napi_delete_reference(env, o->cb);
    if (o->actx) napi_async_destroy(env, o->actx);
  }
  free(o->root);
  free(o->rel);
  free(o);
}

static void run_open(struct op *o) {
  o->out_fd = -1;
  if (o->how & HOW_STAT_FIRST) {
    int r;
    do r = stat(o->rel, &o->st); while (r < 0 && errno == EINTR);
    if (r < 0) { o->err = errno; o->syscall = "stat"; return; }
    if (!S_ISREG(o->st.st_mode)) return; /* err 0, no fd: not a regular file (st_mode says what) */
  }
  int step;
  int fd = afs_open_beneath(o->root, o->rel, (int)o->flags, o->resolve, &step);
  if (fd < 0) { o->err = -fd; o->syscall = step == 0 ? "open(root)" : "openat2"; return; }
  if (fstat(fd, &o->st) < 0) { o->err = errno; o->syscall = "fstat"; close(fd); return; }
  if (!S_ISREG(o->st.st_mode)) { close(fd); return; }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || ((fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)) {
    o->err = errno;
    o->syscall = "fcntl(F_SETFL)";
    close(fd);
    return;
  }
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, o->real, sizeof o->real - 1);
  o->real[n > 0 ? n : 0] = '\0'; /* empty: no /proc, the caller keeps the name it gave */
  struct statfs sf;
  o->magic = fstatfs(fd, &sf) == 0 ? (int64_t)(unsigned long)sf.f_type : 0;
  if (o->how & HOW_PUNCH_PROBE) {
    /* A hole past the end changes nothing where holes can be punched (file.c canPunchHole). */
    off_t at = (o->st.st_size + 4095) & ~(off_t)4095;
    o->punch = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at + 4096, 4096) == 0;
  }
  o->out_fd = fd;
}

static void *thread_main(void *arg) {
  struct op *o = arg;
  int r;
  switch (o->kind) {
    case OP_OPEN: run_open(o); break;
    case OP_FLOCK:
      if (o->arg & AFS_OP_GETLK) {
        /* 0 when no lock is seen, EAGAIN when one is (a write lock asked for, whole file). */
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
        do r = fcntl(o->fd, F_GETLK, &fl); while (r < 0 && errno == EINTR);
        o->err = r < 0 ? errno : fl.l_type == F_UNLCK ? 0 : EAGAIN;
        break;
      }
      do r = flock(o->fd, o->arg); while (r < 0 && errno == EINTR);
      o->err = r < 0 ? errno : 0;
      break;
    case OP_FLOCK_WAIT: run_flock_wait(o); break;
    case OP_KEEPER: o->err = afs_keeper_start(o->fd, o->arg, &o->out_fd, &o->pid, &o->syscall); break;
    case OP_KEEPER_ASK: o->err = afs_keeper_ask(o->fd, &o->pid); break;
    case OP_FSTAT: {
      /* On AFS, fstatfs asks the volume's server (kAFS afs_statfs). */
      struct statfs sf;
      if (fstat(o->fd, &o->st) < 0) { o->err = errno; o->syscall = "fstat"; break; }
      o->magic = fstatfs(o->fd, &sf) == 0 ? (int64_t)(unsigned long)sf.f_type : 0;
      break;
    }
    default:
      /* No retry on EINTR: the descriptor is gone either way (close(2), Linux). */
      o->err = close(o->fd) < 0 && errno != EINTR ? errno : 0;
  }
  struct ctx *c = o->ctx;
  pthread_mutex_lock(&c->mu);
  c->threads--;
  if (o->kind == OP_FLOCK_WAIT) unlist_waiting(c, o);
  if (c->gone) {
    int last = c->closed && c->threads == 0;
    pthread_mutex_unlock(&c->mu);
    if ((o->kind == OP_OPEN || o->kind == OP_KEEPER) && o->out_fd >= 0) close(o->out_fd);
    free_op(NULL, o);
    if (last) {
      pthread_mutex_destroy(&c->mu);
      free(c);
    }
    return NULL;
  }
  o->next = c->done;
  c->done = o;
  uv_async_send(&c->async); /* under mu: the handle is closed only after gone is set */
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

static napi_value open_info(napi_env env, struct op *o) {
  /* [dev, ino, size, mode, fs magic, can punch holes] */
  double v[6] = { (double)o->st.st_dev, (double)o->st.st_ino, (double)o->st.st_size, (double)o->st.st_mode,
                  (double)o->magic, (double)o->punch };
  napi_value arr, x;
  if (napi_create_array_with_length(env, 6, &arr) != napi_ok) return NULL;
  for (uint32_t i = 0; i < 6; i++) {
    if (napi_create_double(env, v[i], &x) != napi_ok || napi_set_element(env, arr, i, x) != napi_ok) return NULL;
  }
  return arr;
}

/* Answers one call: open cb(errno, syscall, fd, info, real); fstat cb(errno, info); keeper
 * cb(errno, syscall, socket, pid); keeper ask cb(errno, pid); flock and close cb(errno). */
static void deliver(napi_env env, struct op *o) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok)
    napi_fatal_error("thread-op", NAPI_AUTO_LENGTH, "napi_open_handle_scope failed", NAPI_AUTO_LENGTH);
  napi_value args[5], cb, recv;
  size_t argc = o->kind == OP_OPEN ? 5 : o->kind == OP_KEEPER ? 4
                : o->kind == OP_FSTAT || o->kind == OP_KEEPER_ASK ? 2 : 1;
  int ok = napi_create_int32(env, o->err, &args[0]) == napi_ok &&
           napi_get_reference_value(env, o->cb, &cb) == napi_ok && cb != NULL && napi_get_global(env, &recv) == napi_ok;
  if (ok && o->kind == OP_OPEN) {
    ok = napi_create_string_utf8(env, o->syscall ? o->syscall : "", NAPI_AUTO_LENGTH, &args[1]) == napi_ok &&
         napi_create_int32(env, o->out_fd, &args[2]) == napi_ok && (args[3] = open_info(env, o)) != NULL &&
         napi_create_string_utf8(env, o->real, NAPI_AUTO_LENGTH, &args[4]) == napi_ok;
  }
  if (ok && o->kind == OP_FSTAT) ok = (args[1] = open_info(env, o)) != NULL;
  if (ok && o->kind == OP_KEEPER) {
    ok = napi_create_string_utf8(env, o->syscall ? o->syscall : "", NAPI_AUTO_LENGTH, &args[1]) == napi_ok &&
         napi_create_int32(env, o->out_fd, &args[2]) == napi_ok && napi_create_int32(env, o->pid, &args[3]) == napi_ok;
  }
  if (ok && o->kind == OP_KEEPER_ASK) ok = napi_create_int32(env, o->pid, &args[1]) == napi_ok;
  if (!ok) {
    /* The answer would be lost and the device would wait for ever. */
    napi_fatal_error("thread-op", NAPI_AUTO_LENGTH, "cannot build the callback's arguments (out of memory?)",
                     NAPI_AUTO_LENGTH);
  }
  if (napi_make_callback(env, o->actx, recv, cb, argc, args, NULL) == napi_pending_exception) {
    napi_value e;
    if (napi_get_and_clear_last_exception(env, &e) == napi_ok) napi_fatal_exception(env, e);
  }
  napi_close_handle_scope(env, scope);
}

static void on_async(uv_async_t *h) {
  struct ctx *c = h->data;
  pthread_mutex_lock(&c->mu);
  struct op *list = c->done;
  c->done = NULL;
  pthread_mutex_unlock(&c->mu);
  struct op *fifo = NULL; /* the list is newest first */
  while (list) {
    struct op *n = list->next;
    list->next = fifo;
    fifo = list;
    list = n;
  }
  while (fifo) {
    struct op *o = fifo;
    fifo = o->next;
    if (--c->live == 0) uv_unref((uv_handle_t *)&c->async);
    deliver(c->env, o);
    free_op(c->env, o);
  }
}

static void on_closed(uv_handle_t *h) {
  struct ctx *c = h->data;
  pthread_mutex_lock(&c->mu);
  c->closed = 1;
  int last = c->threads == 0;
  pthread_mutex_unlock(&c->mu);
  if (last) {
    pthread_mutex_destroy(&c->mu);
    free(c);
  }
}

static void cleanup_hook(void *arg) {
  struct ctx *c = arg;
  pthread_mutex_lock(&c->mu);
  c->gone = 1;
  /* Waiting flocks are given up: nobody is left to take their answer (nor their lock). */
  for (struct op *o = c->waiting; o; o = o->wnext) {
    o->cancel = 1;
    if (o->started) pthread_kill(o->tid, WAIT_SIGNAL);
  }
  struct op *list = c->done;
  c->done = NULL;
  pthread_mutex_unlock(&c->mu);
  while (list) {
    struct op *n = list->next;
    if ((list->kind == OP_OPEN || list->kind == OP_KEEPER) && list->out_fd >= 0) close(list->out_fd);
    free_op(c->env, list);
    list = n;
  }
  uv_close((uv_handle_t *)&c->async, on_closed);
}

static struct ctx *get_ctx(napi_env env) {
  void *data = NULL;
  if (napi_get_instance_data(env, &data) == napi_ok && data) return data;
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) return NULL;
  struct ctx *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->env = env;
  if (pthread_mutex_init(&c->mu, NULL) != 0) { free(c); return NULL; }
  if (uv_async_init(loop, &c->async, on_async) < 0) {
    pthread_mutex_destroy(&c->mu);
    free(c);
    return NULL;
  }
  c->async.data = c;
  uv_unref((uv_handle_t *)&c->async);
  if (napi_set_instance_data(env, c, NULL, NULL) != napi_ok ||
      napi_add_env_cleanup_hook(env, cleanup_hook, c) != napi_ok) {
    uv_close((uv_handle_t *)&c->async, on_closed); /* no thread yet: on_closed frees it */
    return NULL;
  }
  return c;
}

/* Starts o (its kind and inputs set) with its callback argv_cb; NULL with an error pending, or
 * undefined. A thread that cannot be created answers ENOMEM through the same path, an errno
 * neither close(2) nor flock(2) gives (EAGAIN would read as a lock held elsewhere). */
static napi_value start(napi_env env, struct op *o, napi_value argv_cb, const char *what) {
  napi_valuetype t;
  napi_value name;
  struct ctx *c = get_ctx(env);
  if (!c) {
    free_op(NULL, o);
    return afs_throw_errno(env, what, ENOMEM);
  }
  if (napi_typeof(env, argv_cb, &t) != napi_ok || t != napi_function) {
    free_op(NULL, o);
    return afs_throw_type(env, "the last argument must be a callback");
  }
  if (napi_create_reference(env, argv_cb, 1, &o->cb) != napi_ok ||
      napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &o->actx) != napi_ok) {
    free_op(env, o);
    return afs_throw_errno(env, what, ENOMEM);
  }
  o->ctx = c;
  o->out_fd = -1;
  if (c->live++ == 0) uv_ref((uv_handle_t *)&c->async);
  pthread_attr_t attr;
  pthread_t th;
  sigset_t all, old;
  int r = pthread_attr_init(&attr);
  if (r == 0) {
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    /* Signals stay with the loop's thread: the new one starts with all of them blocked. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_mutex_lock(&c->mu);
    c->threads++;
    if (o->kind == OP_FLOCK_WAIT) { o->wnext = c->waiting; c->waiting = o; }
    pthread_mutex_unlock(&c->mu);
    r = pthread_create(&th, &attr, thread_main, o);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
  }
  if (r != 0) {
    pthread_mutex_lock(&c->mu);
    c->threads--;
    if (o->kind == OP_FLOCK_WAIT) unlist_waiting(c, o);
    o->err = ENOMEM;
    o->syscall = "pthread_create";
    o->next = c->done;
    c->done = o;
    uv_async_send(&c->async);
    pthread_mutex_unlock(&c->mu);
  }
  return afs_undefined(env);
}

/* threadOpen(root | null, rel, flags, resolve, how, cb(errno, syscall, fd, info, real)). */
static napi_value js_thread_open(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (afs_args(env, info, 6, argv, "threadOpen(root, rel, flags, resolve, how, cb)")) return NULL;
  struct op *o = calloc(1, sizeof *o);
  if (!o) return afs_throw_errno(env, "threadOpen", ENOMEM);
  o->kind = OP_OPEN;
  if (afs_read_open_args(env, argv, &o->root, &o->rel, &o->flags, &o->resolve) ||
      afs_arg_u32(env, argv[4], &o->how)) {
    free_op(NULL, o);
    return NULL;
  }
  return start(env, o, argv[5], "afsfile:threadOpen");
}

/* An op on a descriptor and one unsigned argument (flock's op, the keeper's shared): `what` is
 * its usage in errors, `resource` its name in async hooks. */
static napi_value start_fd_arg_op(napi_env env, napi_callback_info info, int kind, const char *what,
                                  const char *resource) {
  napi_value argv[3];
  int64_t fd;
  uint32_t arg;
  if (afs_args(env, info, 3, argv, what) || afs_arg_fd(env, argv[0], &fd) || afs_arg_u32(env, argv[1], &arg)) {
    return NULL;
  }
  struct op *o = calloc(1, sizeof *o);
  if (!o) return afs_throw_errno(env, what, ENOMEM);
  o->kind = kind;
  o->fd = (int)fd;
  o->arg = (int)arg;
  return start(env, o, argv[2], resource);
}

/* threadFlock(fd, op, cb(errno)): op as <sys/file.h>, or GETLK (fcntl F_GETLK). */
static napi_value js_thread_flock(napi_env env, napi_callback_info info) {
  return start_fd_arg_op(env, info, OP_FLOCK, "threadFlock(fd, op, cb)", "afsfile:threadFlock");
}

/* threadFlockWait(fd, op, cb(errno)): flock(2) that waits (op without LOCK_NB), on a thread that
 * threadFlockCancel(id) interrupts; returns that id. cb(EINTR) when it was given up. */
static napi_value js_thread_flock_wait(napi_env env, napi_callback_info info) {
  napi_value argv[3], ret;
  int64_t fd;
  uint32_t op;
  if (afs_args(env, info, 3, argv, "threadFlockWait(fd, op, cb)") || afs_arg_fd(env, argv[0], &fd) ||
      afs_arg_u32(env, argv[1], &op)) return NULL;
  if (op & (LOCK_NB | AFS_OP_GETLK)) return afs_throw_type(env, "threadFlockWait: op must wait (no LOCK_NB, no GETLK)");
  if (wait_signal_ready() < 0) return afs_throw_errno(env, "threadFlockWait: sigaction", errno ? errno : EINVAL);
  struct ctx *c = get_ctx(env);
  if (!c) return afs_throw_errno(env, "threadFlockWait", ENOMEM);
  struct op *o = calloc(1, sizeof *o);
  if (!o) return afs_throw_errno(env, "threadFlockWait", ENOMEM);
  o->kind = OP_FLOCK_WAIT;
  o->fd = (int)fd;
  o->arg = (int)op;
  if (++c->next_id == 0) c->next_id = 1;
  uint32_t id = o->id = c->next_id;
  if (start(env, o, argv[2], "afsfile:threadFlockWait") == NULL) return NULL;
  return napi_create_uint32(env, id, &ret) == napi_ok ? ret : NULL;
}

/* threadFlockCancel(id): interrupts that waiting flock (its cb then gets EINTR, or 0 if it was
 * granted first). True while the call has not left flock for good: the caller sends again a
 * little later (a signal sent just before the thread entered flock is lost). */
static napi_value js_thread_flock_cancel(napi_env env, napi_callback_info info) {
  napi_value argv[1], ret;
  uint32_t id;
  if (afs_args(env, info, 1, argv, "threadFlockCancel(id)") || afs_arg_u32(env, argv[0], &id)) return NULL;
  struct ctx *c = get_ctx(env);
  int found = 0;
  if (c) {
    pthread_mutex_lock(&c->mu);
    for (struct op *o = c->waiting; o; o = o->wnext) {
      if (o->id != id) continue;
      found = 1;
      o->cancel = 1;
      /* Still listed: the thread lives (it leaves the list under mu before it ends). */
      if (o->started) pthread_kill(o->tid, WAIT_SIGNAL);
      break;
    }
    pthread_mutex_unlock(&c->mu);
  }
  return napi_get_boolean(env, found, &ret) == napi_ok ? ret : NULL;
}

/* An op on a descriptor alone (fstat, close): `what` names it in errors and async hooks. */
static napi_value start_fd_op(napi_env env, napi_callback_info info, int kind, const char *what,
                              const char *resource) {
  napi_value argv[2];
  int64_t fd;
  if (afs_args(env, info, 2, argv, what) || afs_arg_fd(env, argv[0], &fd)) return NULL;
  struct op *o = calloc(1, sizeof *o);
  if (!o) return afs_throw_errno(env, what, ENOMEM);
  o->kind = kind;
  o->fd = (int)fd;
  return start(env, o, argv[1], resource);
}

/* threadFstat(fd, cb(errno, info)): fstat and fstatfs, info as threadOpen's. */
static napi_value js_thread_fstat(napi_env env, napi_callback_info info) {
  return start_fd_op(env, info, OP_FSTAT, "threadFstat(fd, cb)", "afsfile:threadFstat");
}

/* threadClose(fd, cb(errno)). */
static napi_value js_thread_close(napi_env env, napi_callback_info info) {
  return start_fd_op(env, info, OP_CLOSE, "threadClose(fd, cb)", "afsfile:threadClose");
}

/* threadLockKeeper(fd, shared, cb(errno, syscall, socket, pid)): a lock keeper (lock-keeper.c)
 * for the open file fd (its own open file description: the keeper keeps it), locking it
 * exclusive (shared 0) or shared (1) without waiting. errno 0: granted, `socket` holds it (close-on-exec);
 * else `syscall` says what failed (flock: refused, the keeper is gone). */
static napi_value js_thread_lock_keeper(napi_env env, napi_callback_info info) {
  return start_fd_arg_op(env, info, OP_KEEPER, "threadLockKeeper(fd, shared, cb)", "afsfile:threadLockKeeper");
}

/* threadKeeperAsk(socket, cb(errno, pid)): whether a lock keeper still answers on this socket,
 * and its pid (an adopter checks what it took). */
static napi_value js_thread_keeper_ask(napi_env env, napi_callback_info info) {
  return start_fd_op(env, info, OP_KEEPER_ASK, "threadKeeperAsk(socket, cb)", "afsfile:threadKeeperAsk");
}

int afs_register_thread_op(napi_env env, napi_value exports) {
  static const struct afs_fn fns[] = {
    { "threadOpen", js_thread_open }, { "threadFlock", js_thread_flock }, { "threadFstat", js_thread_fstat },
    { "threadClose", js_thread_close }, { "threadFlockWait", js_thread_flock_wait },
    { "threadFlockCancel", js_thread_flock_cancel }, { "threadLockKeeper", js_thread_lock_keeper },
    { "threadKeeperAsk", js_thread_keeper_ask },
  };
  return afs_set_fns(env, exports, fns, AFS_COUNT(fns)) ||
         afs_set_i32(env, exports, "OPEN_STAT_FIRST", HOW_STAT_FIRST) ||
         afs_set_i32(env, exports, "OPEN_PUNCH_PROBE", HOW_PUNCH_PROBE) ? -1 : 0;
}
