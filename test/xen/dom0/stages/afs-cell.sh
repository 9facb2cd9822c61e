#!/bin/sh
# The test AFS cell in dom0, with authentication: the MIT KDC and the OpenAFS servers on
# their own address, from the state prebuilt on the host (make-cell.sh). kAFS mounts the
# images volume at /afs (source "%cell:volume.": busybox mount hands a "#" source to a
# mount helper), or the OpenAFS client reaches it under /afs/CELL; the administrator's token
# gives the worker's identity rlidwk there.
. /xentest/lib.sh
. /xentest/afs/lib.sh

t0=$(now_s)
afs_address || fail "cannot give the servers $AFS_ADDR"
afs_vicep_tmpfs || fail "cannot put /vicepa on a tmpfs of its own"
afs_start_kdc
afs_start_db || { show ptserver "$AFS_LOG/PtLog"; fail "the database servers did not come up"; }
xt_step "KDC, ptserver and vlserver up in $(($(now_s) - t0))s"
afs_start_fs || { show FileLog "$AFS_LOG/FileLog"; fail "the file server did not come up"; }
xt_step "fileserver and volserver up in $(($(now_s) - t0))s; /vicepa (tmpfs, ${AFS_VICEP_MB} MiB): $(afs_vicep_used)"
afs_client_start > /run/xentest/client.out 2>&1 || { show client /run/xentest/client.out; fail "the $AFS_CLIENT client cannot reach $AFS_VOLUME"; }
show client /run/xentest/client.out
xt_step "$AFS_CLIENT client up, $AFS_VOLUME at $AFS_DIR, in $(($(now_s) - t0))s"
afs_grant_worker > /run/xentest/acl.out 2>&1 || { show acl /run/xentest/acl.out; fail "the administrator cannot set the ACL"; }
show acl /run/xentest/acl.out
grep -q "$AFS_WORKER_PTS" /run/xentest/acl.out || fail "the ACL does not name $AFS_WORKER_PTS"
xt_step "cell $AFS_CELL ready in $(($(now_s) - t0))s; $AFS_WORKER_PTS has rlidwk on $AFS_DIR"
exit 0
