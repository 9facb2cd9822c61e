#!/bin/sh
# xl migrate of a running guest with an afsfile disk to this same host (`xl migrate -s ""`:
# the receiver runs here, no ssh), in libxl's order: the destination (xt-mig--incoming)
# attaches the image while the suspended source still holds its lock, and takes the lock
# when its guest connects, after xl has destroyed the source. The guest writes (xtio run's
# phases) while the migration starts, then verifies what it wrote, then polls its disk for
# dom0's mark and verifies again after the migration; dom0 verifies the image. Zero guest
# I/O errors.
. /xentest/lib.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker is not running"; }
functional_io
img=$IMAGES/mig.img
seed=19
make_image "$img"
GUEST_MEMORY=128 # what the migration copies
# The destination's console goes to guest-xt-mig--incoming.log (xenconsoled names it when
# the domain appears): the guest's log is both files.
rm -f "$(guest_console xt-mig--incoming)"
guest_log() {
  tr -d '\r' < "$(guest_console "$1")" 2>/dev/null
  tr -d '\r' < "$(guest_console "$1--incoming")" 2>/dev/null
}
guest_start xt-mig "vdev=xvda,access=rw,$AFS_SPEC,target=$img" $seed "xt.mode=save"
first=$(guest_domid xt-mig)
be1=$(backend_of xt-mig)
guest_wait_line xt-mig '^XT DISK' "$GUEST_TIMEOUT"

t0=$(now_s)
xt_step "xl migrate -s '' xt-mig 'xl migrate-receive -e' while the guest writes"
timeout 300 xl migrate -s "" xt-mig "xl migrate-receive -e" > /run/xentest/xt-mig.migrate 2>&1 || {
  show "xl migrate" /run/xentest/xt-mig.migrate
  show afsfile "$AFSFILE_LOG"
  guest_fail xt-mig "$be1" "xl migrate failed"
}
show "xl migrate" /run/xentest/xt-mig.migrate
d=$(xl domid xt-mig) || fail "xl migrate returned but xt-mig is not there"
[ "$d" != "$first" ] || fail "xt-mig is still domid $first after the migration"
domid_gone "$first" || fail "the source (domid $first) is still there after xl migrate"
echo "$d" > /run/xentest/xt-mig.domid
xt_step "migrated in $(($(now_s) - t0))s: domid $first -> $d"
wait_until 20 xs_gone "$be1" || fail "the source's backend $be1 not removed 20s after the migration"
guest_connect xt-mig
be2=$(backend_of xt-mig)
"$AFSFILE" status > /run/xentest/xt-mig.status 2>&1
show "afsfile status" /run/xentest/xt-mig.status
grep -q "ex held .*$img" /run/xentest/xt-mig.status || fail "the destination does not hold the image lock"
grep -q "migration destination: the image lock was taken" "$AFSFILE_LOG" ||
  fail "the worker did not log the destination taking the lock"
xt_step "$(grep -m1 'migration destination: the image lock was taken' "$AFSFILE_LOG" | sed 's/.*: //')"

guest_wait_line xt-mig '^XT SAVE-READY' "$GUEST_TIMEOUT"
image_mark "$img" XTGO || fail "cannot mark $img"
guest_wait xt-mig
guest_log xt-mig | grep -q '^XTIO MARK XTGO' || fail "the guest did not see dom0's mark after the migration"
verify_image "$img" $seed
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died during the stage"; }
rm -f "$img"
exit 0
