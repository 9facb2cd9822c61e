#!/bin/sh
# Switches this boot from kAFS to the OpenAFS client (openafs.ko built on the host, cache kind
# openafs-ko): renew and the worker stopped, /afs unmounted, kafs unloaded (both clients want
# the callback port 7001), openafs.ko loaded, afsd with a memory cache and -dynroot; a mount
# point for the images volume in root.cell and the l right there for the worker. The
# afs-openafs-* stages then run the kAFS stages' scripts with this client.
. /xentest/lib.sh
. /xentest/afs/lib.sh

[ -f /xentest/afs/openafs.ko ] || fail "no openafs.ko in dom0 (prepare with XEN_TEST_AFS_OPENAFS=1)"
if afsfile_worker_alive; then
  old=$(cat "$AFSFILE_PIDFILE")
  kill "$old"
  wait_until 30 sh -c "! kill -0 $old 2>/dev/null" || fail "renew/worker did not stop"
fi
t0=$(now_s)
umount /afs 2>/dev/null
rmmod kafs || fail "cannot unload kafs: $(lsmod | grep kafs)"
echo openafs > /run/xentest/afs-client
. /xentest/afs/lib.sh
afs_client_start > /run/xentest/client.out 2>&1 || { show client /run/xentest/client.out; fail "the OpenAFS client cannot reach $AFS_VOLUME"; }
show client /run/xentest/client.out
xt_step "OpenAFS client up, $AFS_VOLUME at $AFS_DIR, in $(($(now_s) - t0))s"
afs_admin fs listacl "$AFS_DIR" > /run/xentest/acl.out 2>&1
show acl /run/xentest/acl.out
grep -q "$AFS_WORKER_PTS" /run/xentest/acl.out || fail "the ACL of $AFS_DIR does not name $AFS_WORKER_PTS"
exit 0
