/* Every declaration the afsfile N-API addon's files share. The C stays minimal: each function
 * is a thin wrapper over one system call; all logic lives in TypeScript. Every N-API call's
 * status is checked: a failed one leaves an exception pending (or, in a callback from the
 * loop, is a fatal error) rather than a value read uninitialised. */
#ifndef AFSFILE_ADDON_H
#define AFSFILE_ADDON_H
#include <node_api.h>
#include <stdint.h>

/* Throws an Error carrying `errno` (number) and `syscall` (the operation), returns NULL. */
napi_value afs_throw_errno(napi_env env, const char *op, int err);
/* Throws a TypeError with the message, returns NULL. */
napi_value afs_throw_type(napi_env env, const char *msg);

/* Reads exactly the first n arguments of the call into argv (n <= 8); 0, or a TypeError
 * saying `usage` is pending when fewer were passed. */
int afs_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage);

/* Argument readers: return 0 on success, else a TypeError is pending. */
int afs_arg_fd(napi_env env, napi_value v, int64_t *out); /* an int; negative ones fail in the kernel (EBADF) */
int afs_arg_i64(napi_env env, napi_value v, int64_t *out);
int afs_arg_u32(napi_env env, napi_value v, uint32_t *out);
int afs_arg_bool(napi_env env, napi_value v, int *out);
/* Reads (data, length) of an ArrayBuffer, TypedArray or Buffer. */
int afs_arg_bytes(napi_env env, napi_value v, void **data, size_t *len);

napi_value afs_undefined(napi_env env);
napi_value afs_make_i64(napi_env env, int64_t v);
napi_value afs_make_bool(napi_env env, int v);

/* mmap(fd, length, offset, writable ? rw : r, MAP_SHARED) from the JS arguments (fd, length,
 * offset, writable) of mapFile and mmapShared: 0 with *addr and *len set, else an error is
 * pending. */
int afs_mmap_args(napi_env env, const napi_value *argv, void **addr, size_t *len);

/* openat2.c: opens `rel` beneath the directory `root` (NULL: from the working directory) with
 * RESOLVE_* bits: the fd, or a negative errno; *step says which call failed (0 opening the
 * root, 1 openat2). And its JS arguments (root | null, rel, flags, resolve) read from argv[0..3]:
 * 0 with both strings malloc'ed, else a TypeError is pending. */
int afs_open_beneath(const char *root, const char *rel, int flags, uint64_t resolve, int *step);
int afs_read_open_args(napi_env env, const napi_value *argv, char **root, char **rel, uint32_t *flags,
                       uint32_t *resolve);

/* lock-keeper.c, both blocking (run on threads, thread-op.c): a lock keeper for the open file
 * `image` (exclusive, or shared), 0 with *sock and *pid set, else an errno and *what names the
 * failed call ("flock": the lock was refused); and a question to a keeper: its errno (0 while it
 * holds the lock) with *pid. */
int afs_keeper_start(int image, int shared, int *sock, int *pid, const char **what);
int afs_keeper_ask(int sock, int *pid);

/* Registration of each file's functions into the exports object, one per .c file: 0, else an
 * error is pending. */
int afs_register_file(napi_env env, napi_value exports);     /* file.c */
int afs_register_xen(napi_env env, napi_value exports);      /* xen.c */
int afs_register_fdwatch(napi_env env, napi_value exports);  /* fdwatch.c */
int afs_register_uring(napi_env env, napi_value exports);    /* uring.c */
int afs_register_pool(napi_env env, napi_value exports);     /* pool.c */
int afs_register_openat2(napi_env env, napi_value exports);  /* openat2.c */
int afs_register_lock(napi_env env, napi_value exports);     /* lock.c */
int afs_register_thread_op(napi_env env, napi_value exports); /* thread-op.c */

/* threadFlock's op for fcntl(F_GETLK) on the whole file instead of flock(2) (exported as GETLK by
 * lock.c): kAFS answers it from a fresh FetchStatus (fs/afs/flock.c afs_do_getlk), which
 * refreshes the lock count a non-blocking flock is refused on without asking the server
 * (afs_do_setlk). */
#define AFS_OP_GETLK 0x1000

struct afs_fn { const char *name; napi_callback cb; };
#define AFS_COUNT(a) (sizeof (a) / sizeof (a)[0])
/* exports[name] = a function calling cb, for each; or an int32 constant. 0, else an error is pending. */
int afs_set_fns(napi_env env, napi_value exports, const struct afs_fn *fns, size_t n);
int afs_set_i32(napi_env env, napi_value exports, const char *name, int32_t value);

#endif
