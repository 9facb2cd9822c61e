/* Xen device calls (/dev/xen/evtchn, /dev/xen/gntdev): filled in by the Linux platform. */
#include "addon.h"

void afs_register_xen(napi_env env, napi_value exports) {
  (void)env;
  (void)exports;
}
