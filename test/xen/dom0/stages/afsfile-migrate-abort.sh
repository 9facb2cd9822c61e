#!/bin/sh
# An aborted migration: the destination gets the guest's image (attached without the lock,
# deferred to its connect) and a second disk whose image does not exist, so its creation fails
# after the stream has arrived; the source runs on (xl migrate -C, or where the hypervisor
# cannot migrate live the same steps without the live phase: migrate.sh). The source keeps its
# image lock (/proc/locks: its process throughout, afsfile status: held, the same process) and
# its guest finishes its workload without an I/O error; dom0 verifies the image.
. /xentest/lib.sh
. /xentest/migrate.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker is not running"; }
functional_io
img=$IMAGES/mab.img
seed=23
make_image "$img"
GUEST_MEMORY=128
guest_start xt-mab "vdev=xvda,access=rw,$AFS_SPEC,target=$img" $seed "xt.mode=save"
first=$(guest_domid xt-mab)
be1=$(backend_of xt-mab)
guest_wait_line xt-mab '^XT SAVE-READY' "$GUEST_TIMEOUT"
pid1=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "/run/afsfile/status/dev-$first-$XVDA.json" | head -n 1)
lock_watch "$img"

migrate_here_abort xt-mab "vdev=xvdb,access=rw,$AFS_SPEC,target=$IMAGES/missing-mab.img"
grep -q 'missing-mab' "$MIGRATE_LOG" ||
  fail "the destination did not fail at its second disk: $(create_error "$MIGRATE_LOG")"
grep -q 'already attached' "$MIGRATE_LOG" &&
  fail "the destination's attach of the source's image was refused: $(grep -m1 'already attached' "$MIGRATE_LOG")"
d=$(xl domid xt-mab) || fail "the source xt-mab is gone after the aborted migration"
[ "$d" = "$first" ] || fail "xt-mab is domid $d, not the source $first"
wait_until 30 sh -c '! xl domid xt-mab--incoming >/dev/null 2>&1' || fail "the destination is still there"
xt_step "migration aborted ($MIGRATE_HOW) at the destination's second disk; the source (domid $first) runs on"
"$AFSFILE" status > /run/xentest/xt-mab.status 2>&1
show "afsfile status" /run/xentest/xt-mab.status
grep -q "ex held .*$img" /run/xentest/xt-mab.status || fail "the source no longer holds the image lock"
pid2=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "/run/afsfile/status/dev-$first-$XVDA.json" | head -n 1)
[ "$pid1" = "$pid2" ] || fail "the source's device process changed ($pid1 -> $pid2): its lock was not kept"
lock_watch_stop
grep -q ' none$' "/run/xentest/locks.$XT_STAGE" && fail "the source's image lock was let go during the aborted migration"
holders=$(lock_holders)
set -- $holders
[ $# = 1 ] && [ "${1%%/*}" = "$pid1" ] || fail "the image lock's holders were '$holders', not only the source ($pid1)"
xt_step "image lock held by the source's open file ($holders) throughout"
guest_mark_verify xt-mab "$img" $seed "the aborted migration"
exit 0
