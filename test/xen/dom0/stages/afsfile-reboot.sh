#!/bin/sh
# Guest reboot (on_reboot = "restart"): the guest writes its pattern and reboots;
# xl destroys the old domain (its backend goes through the normal removal) and
# creates it again; the disk reconnects through the same afsfile worker and the
# guest's second boot reads back what the first wrote.
. /xentest/lib.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker is not running"; }
functional_io
img=$IMAGES/rb.img
seed=11
make_image "$img"
GUEST_ON_REBOOT=restart
guest_start xt-reboot "vdev=xvda,access=rw,$AFS_SPEC,target=$img" $seed "xt.mode=reboot"
first=$(guest_domid xt-reboot)
be1=$(backend_of xt-reboot)
guest_wait_line xt-reboot '^XT REBOOTING' "$GUEST_TIMEOUT"
wait_until 60 domid_gone "$first" || guest_fail xt-reboot "$be1" "domain $first still there 60s after the guest rebooted"
wait_until 20 xs_gone "$be1" || guest_fail xt-reboot "$be1" "backend $be1 not removed 20s after the reboot"
xt_step "first boot (domid $first) ended, $be1 removed"

new_domid() { d=$(xl domid xt-reboot 2>/dev/null) && [ "$d" != "$first" ]; }
wait_until 60 new_domid || fail "xl did not restart xt-reboot within 60s"
echo "$d" > /run/xentest/xt-reboot.domid
xt_step "xl restarted xt-reboot as domid $d"
guest_connect xt-reboot
guest_wait xt-reboot
guest_log xt-reboot | grep -q '^XT REBOOT second boot' || fail "the guest did not see its second boot"
guest_log xt-reboot | grep '^XT REBOOT second boot' | sed 's/^/  [reboot] /'
verify_image "$img" $seed
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died during the stage"; }
rm -f "$img"
exit 0
