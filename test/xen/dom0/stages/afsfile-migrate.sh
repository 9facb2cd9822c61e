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
lock_watch "$img"

t0=$(now_s)
xt_step "xl migrate -s '' xt-mig 'xl migrate-receive -e' while the guest writes"
timeout 300 xl migrate -s "" xt-mig "xl migrate-receive -e" > /run/xentest/xt-mig.migrate 2>&1 || {
  show "xl migrate" /run/xentest/xt-mig.migrate
  show afsfile "$AFSFILE_LOG"
  guest_fail xt-mig "$be1" "xl migrate failed"
}
show "xl migrate" /run/xentest/xt-mig.migrate
guest_returned xt-mig "xl migrate" "$first"
guest_left "$first" "$be1" "xl migrate"
xt_step "migrated in $(($(now_s) - t0))s: domid $first -> $(guest_domid xt-mig)"
guest_connect xt-mig
be2=$(backend_of xt-mig)
"$AFSFILE" status > /run/xentest/xt-mig.status 2>&1
show "afsfile status" /run/xentest/xt-mig.status
grep -q "ex held .*$img" /run/xentest/xt-mig.status || fail "the destination does not hold the image lock"
grep -q "migration destination: the image lock was taken" "$AFSFILE_LOG" ||
  fail "the worker did not log the destination taking the lock"
xt_step "$(grep -m1 'migration destination: the image lock was taken' "$AFSFILE_LOG" | sed 's/.*: //')"
lock_watch_stop
holders=$(lock_holders)
set -- $holders
[ $# = 2 ] || fail "the image lock's holders were '$holders', not the source's then the destination's device process"
# The time nobody held the lock: from the source's last close to the destination's flock.
gap=$(awk '$2 == "none" && seen { t = $1 } $2 != "none" { if (seen && t != "") { printf "%.1f", $1 - t; exit } seen = 1 }' \
  "/run/xentest/locks.$XT_STAGE")
xt_step "image lock: process $1 (source), then $2 (destination), never both; unheld for ${gap:-?} s"
xt_metric "lock_gap_s=${gap:-?} migrate_s=$(($(now_s) - t0))"

guest_wait_line xt-mig '^XT SAVE-READY' "$GUEST_TIMEOUT"
guest_mark_verify xt-mig "$img" $seed "the migration"
exit 0
