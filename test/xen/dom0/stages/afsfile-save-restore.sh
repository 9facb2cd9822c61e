#!/bin/sh
# xl save + xl restore of a guest with an afsfile disk: the guest writes its
# pattern; xl save suspends it and removes its devices through the normal path
# (the worker lets go of the image); xl restore creates it again and the disk
# reconnects; dom0 then marks the image and the guest, which kept polling its
# disk across the save, reads its pattern back.
. /xentest/lib.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker is not running"; }
functional_io
img=$IMAGES/s.img
seed=13
chk=/run/xentest/xt-save.chk
make_image "$img"
GUEST_MEMORY=128 # the save file is the guest's memory, in dom0's RAM
guest_start xt-save "vdev=xvda,access=rw,$AFS_SPEC,target=$img" $seed "xt.mode=save"
first=$(guest_domid xt-save)
be1=$(backend_of xt-save)
guest_wait_line xt-save '^XT SAVE-READY' "$GUEST_TIMEOUT"

t0=$(now_s)
timeout 120 xl save xt-save "$chk" > /run/xentest/xt-save.save 2>&1 || {
  show "xl save" /run/xentest/xt-save.save
  guest_fail xt-save "$be1" "xl save failed"
}
show "xl save" /run/xentest/xt-save.save
guest_left "$first" "$be1" "xl save"
xt_step "saved in $(($(now_s) - t0))s ($(($(wc -c < "$chk") / 1048576)) MiB), $be1 removed"

t0=$(now_s)
timeout 120 xl restore "$chk" > /run/xentest/xt-save.restore 2>&1 || {
  show "xl restore" /run/xentest/xt-save.restore
  dump_debug xt-save
  timeout 30 xl destroy xt-save
  fail "xl restore failed: $(create_error /run/xentest/xt-save.restore)"
}
show "xl restore" /run/xentest/xt-save.restore
rm -f "$chk"
guest_returned xt-save "xl restore"
xt_step "restored in $(($(now_s) - t0))s as domid $(guest_domid xt-save)"
guest_connect xt-save
guest_mark_verify xt-save "$img" $seed "the restore"
exit 0
