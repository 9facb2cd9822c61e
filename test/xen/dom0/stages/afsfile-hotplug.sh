#!/bin/sh
# Hot attach and detach: a guest boots without a disk; `xl block-attach` gives it
# xvdb through block-afsfile, the guest runs the pattern workload on it; `xl
# block-detach` removes it (the guest sees it go), the backend directory is gone
# and dom0 checks the pattern in the image.
. /xentest/lib.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker is not running"; }
functional_io
img=$IMAGES/b.img
seed=8
XVDB=51728
make_image "$img"
guest_start xt-hot "" $seed "xt.dev=xvdb xt.wait=$BOOT_TIMEOUT xt.hold=60"
guest_wait_line xt-hot '^XT BOOT' "$BOOT_TIMEOUT"
domid=$(guest_domid xt-hot)
be=$(backend_of xt-hot $XVDB)

xt_step "xl block-attach xt-hot xvdb"
out=/run/xentest/xt-hot.attach
timeout 60 xl block-attach xt-hot "vdev=xvdb,access=rw,$AFS_SPEC,target=$img" > "$out" 2>&1 || {
  show "xl block-attach" "$out"
  guest_fail xt-hot "$be" "xl block-attach failed: $(create_error "$out")"
}
guest_connect xt-hot $XVDB
guest_wait_line xt-hot '^XT HOLD' "$GUEST_TIMEOUT"
guest_log xt-hot | grep -q '^XTIO OK' || guest_fail xt-hot "$be" "the guest's workload on xvdb did not succeed"

xt_step "xl block-detach xt-hot xvdb"
out=/run/xentest/xt-hot.detach
timeout 60 xl block-detach xt-hot xvdb > "$out" 2>&1 || {
  show "xl block-detach" "$out"
  guest_fail xt-hot "$be" "xl block-detach failed: $(tail -n 1 "$out")"
}
wait_until 20 xs_gone "$be" || guest_fail xt-hot "$be" "backend $be still there 20s after xl block-detach"
xt_step "backend $be removed"
guest_wait_line xt-hot '^XT DETACHED /dev/xvdb' 60
guest_wait xt-hot
verify_image "$img" $seed
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died during the stage"; }
rm -f "$img"
exit 0
