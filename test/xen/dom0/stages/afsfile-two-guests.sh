#!/bin/sh
# Two guests, two images, at the same time: both disks are Connected at once,
# served by one device host (isolation=identity, the default); both workloads
# pass and dom0 checks both images.
. /xentest/lib.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker is not running"; }
functional_io
make_image "$IMAGES/t1.img"
make_image "$IMAGES/t2.img"
GUEST_CONNECT=no
# Both hold their disk after the workload, so both are provably attached at once.
guest_start xt-two-1 "vdev=xvda,access=rw,$AFS_SPEC,target=$IMAGES/t1.img" 21 "xt.hold=120"
guest_start xt-two-2 "vdev=xvda,access=rw,$AFS_SPEC,target=$IMAGES/t2.img" 22 "xt.hold=120"
guest_connect xt-two-1
guest_connect xt-two-2
b1=$(backend_of xt-two-1) b2=$(backend_of xt-two-2)
[ "$(xsr "$b1/state")" = 4 ] && [ "$(xsr "$b2/state")" = 4 ] || fail "the two disks were not Connected at the same time"
p1=$(sed -n 's/^  "pid": \([0-9]*\),*$/\1/p' "/run/afsfile/status/dev-$(guest_domid xt-two-1)-$XVDA.json" 2>/dev/null)
p2=$(sed -n 's/^  "pid": \([0-9]*\),*$/\1/p' "/run/afsfile/status/dev-$(guest_domid xt-two-2)-$XVDA.json" 2>/dev/null)
xt_step "both Connected: $b1 (device process ${p1:-?}), $b2 (device process ${p2:-?})"
# isolation=identity (the default): one device host serves both disks.
[ -n "$p1" ] && [ "$p1" = "$p2" ] || fail "expected one device host for both disks, found '${p1}' and '${p2}'"

guest_wait_line xt-two-1 '^XT HOLD' "$GUEST_TIMEOUT"
guest_wait_line xt-two-2 '^XT HOLD' "$GUEST_TIMEOUT"
timeout 60 xl block-detach xt-two-1 xvda || guest_fail xt-two-1 "$b1" "xl block-detach xt-two-1 xvda failed"
timeout 60 xl block-detach xt-two-2 xvda || guest_fail xt-two-2 "$b2" "xl block-detach xt-two-2 xvda failed"
guest_wait xt-two-1
r1=$GUEST_RAND_WRITTEN
guest_wait xt-two-2
verify_image "$IMAGES/t2.img" 22
GUEST_RAND_WRITTEN=$r1
verify_image "$IMAGES/t1.img" 21
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died during the stage"; }
rm -f "$IMAGES/t1.img" "$IMAGES/t2.img"
exit 0
