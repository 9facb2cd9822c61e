/* The two readiness mechanisms behind watchFd (fdwatch.c: a poll thread; fdwatch_uv.c: uv_poll
 * in the main loop). Both handles start with the kind, so watchRearm/Close/Ref dispatch on it. */
#ifndef AFSFILE_FDWATCH_H
#define AFSFILE_FDWATCH_H
#include <node_api.h>

enum { WATCH_THREAD = 1, WATCH_UVPOLL = 2 };

#define WATCH_READ_MAX 4096 /* evtchn returns at most PAGE_SIZE per read */

/* uv_poll mechanism (fdwatch_uv.c). The handle's first member is an int equal to WATCH_UVPOLL. */
napi_value afs_uvwatch_fd(napi_env env, int fd, napi_value callback);
int afs_uvwatch_rearm(void *w); /* 0 or a negated errno */
void afs_uvwatch_close(napi_env env, void *w);
void afs_uvwatch_ref(void *w, int ref);

#endif
