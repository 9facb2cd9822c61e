/* Shared helpers of the afsfile N-API addon. The C stays minimal: each function is a thin
 * wrapper over one system call; all logic lives in TypeScript. */
#ifndef AFSFILE_ADDON_H
#define AFSFILE_ADDON_H
#include <node_api.h>
#include <stdint.h>

/* Throws an Error carrying `errno` (number) and `syscall` (the operation), returns NULL. */
napi_value afs_throw_errno(napi_env env, const char *op, int err);
/* Throws a TypeError with the message, returns NULL. */
napi_value afs_throw_type(napi_env env, const char *msg);

/* Argument readers: return 0 on success, else a TypeError is pending. */
int afs_arg_i64(napi_env env, napi_value v, int64_t *out);
int afs_arg_u32(napi_env env, napi_value v, uint32_t *out);
int afs_arg_bool(napi_env env, napi_value v, int *out);
/* Reads (data, length) of an ArrayBuffer, TypedArray or Buffer. */
int afs_arg_bytes(napi_env env, napi_value v, void **data, size_t *len);

napi_value afs_undefined(napi_env env);
napi_value afs_make_i64(napi_env env, int64_t v);
napi_value afs_make_bool(napi_env env, int v);

/* Registration of each file's functions into the exports object. */
void afs_register_file(napi_env env, napi_value exports);
void afs_register_xen(napi_env env, napi_value exports);
void afs_register_pool(napi_env env, napi_value exports);
void afs_set_fn(napi_env env, napi_value exports, const char *name, napi_callback cb);

#endif
