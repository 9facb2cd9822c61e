#!/bin/sh
# xl migrate of a running guest with an afsfile disk to this same host, in libxl's order (or,
# where the hypervisor cannot migrate live, the same steps without the live phase: migrate.sh):
# the destination (xt-mig--incoming) attaches the image while the suspended source still holds
# its lock, and takes the lock when its guest connects, after the source is destroyed. The guest
# writes (xtio run's phases) while the migration starts, then verifies what it wrote, then polls
# its disk for dom0's mark and verifies again after the migration; dom0 verifies the image. Zero
# guest I/O errors; /proc/locks sampled throughout: never two holders of the image's lock.
. /xentest/lib.sh
. /xentest/migrate.sh

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
  local f
  for f in "$(guest_console "$1")" "$(guest_console "$1--incoming")"; do
    [ -f "$f" ] && tr -d '\r' < "$f"
  done
  return 0
}
guest_start xt-mig "vdev=xvda,access=rw,$AFS_SPEC,target=$img" $seed "xt.mode=save"
first=$(guest_domid xt-mig)
be1=$(backend_of xt-mig)
guest_wait_line xt-mig '^XT DISK' "$GUEST_TIMEOUT"
lock_watch "$img"

t0=$(now_s)
migrate_here xt-mig
guest_returned xt-mig "the migration" "$first"
guest_left "$first" "$be1" "the migration"
xt_step "migrated ($MIGRATE_HOW) in $(($(now_s) - t0))s: domid $first -> $(guest_domid xt-mig)"
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
[ $# = 2 ] || fail "the image lock's holders were '$holders', not the source's then the destination's open file"
# The time nobody held the lock: from the source's last close to the destination's flock.
gap=$(awk '$2 == "none" && seen { t = $1 } $2 != "none" { if (seen && t != "") { printf "%.1f", $1 - t; exit } seen = 1 }' \
  "/run/xentest/locks.$XT_STAGE")
xt_step "image lock: $1 (source: pid/fds), then $2 (destination), never both; unheld for ${gap:-?} s"
# From the source's destroy (where this stage does it) to the destination's lock.
taken=$(awk -v p="$2:" 'index($2, p) == 1 { print $1; exit }' "/run/xentest/locks.$XT_STAGE")
after=
[ -n "$MIGRATE_DESTROYED" ] && [ -n "$taken" ] && after=$(awk -v a="$MIGRATE_DESTROYED" -v b="$taken" 'BEGIN { printf "%.1f", b - a }')
[ -n "$after" ] && xt_step "the destination held the lock ${after} s after the source's destroy began"
xt_metric "lock_gap_s=${gap:-?} destroy_to_lock_s=${after:-?} migrate_s=$(($(now_s) - t0))"

guest_wait_line xt-mig '^XT SAVE-READY' "$GUEST_TIMEOUT"
guest_mark_verify xt-mig "$img" $seed "the migration"
exit 0
