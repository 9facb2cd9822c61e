#!/bin/sh
# Issue 18 with the OpenAFS client: a second AFS client against the image lock that dom0's worker
# takes through openafs.ko. kAFS cannot be loaded beside openafs.ko (both register the file system
# type "afs"): the second client is afslock (afs/afslock.sh), which asks the file server itself
# (FetchStatus's lockCount, SetLock, ReleaseLock) over an Rx connection of its own.
#   ro: the image attached read-only (a shared flock): the second client's read lock is granted
#       beside it (lockCount 1), its write lock refused;
#   rw: attached read-write (an exclusive flock): lockCount -1, the second client's write and
#       read locks refused; after the detach its write lock is granted; while it holds the lock,
#       dom0's rw attach is refused with the hotplug error "in use by another host";
#   adoption: kill -9 of the worker while its device process lives, a new worker adopts the
#       socket to the lock's keeper (pidfd_getfd), the guest ends, the device closes: the lock
#       must be released on the file server. The OpenAFS client records a flock's owner by
#       process (tgid) and releases it only on a close by that process (src/afs/VNOPS/
#       afs_vnop_flock.c lockIdSet, lockIdcmp2), so a keeper process holds it (src/image/lock.ts)
#       and its exit, at the last close of the socket, is that close. Without the keeper the
#       adopter's close released nothing and the client went on extending the lock.
. /xentest/lib.sh
. /xentest/afs/lib.sh
. /xentest/afs/afslock.sh
. /xentest/afs/ident.sh

[ "$AFS_CLIENT" = openafs ] || fail "needs the OpenAFS client (afs-openafs-client)"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile renew/worker is not running"; }
afslock_init
functional_io
SEQ_MB=4 BUF_MB=2 RAND_MB=1 RAND_OPS=64
IMAGE_MB=$((SEQ_MB + BUF_MB + RAND_MB + 20 + AFS_MB_BIAS)) # a size of its own: its namei file is found by size
name=xt-lock2-openafs.img
img=$AFS_DIR/$name
B=$AFSLOCK_DIR
ro_seed=31

afs_image_create "$img" "$IMAGE_MB"
fid=$(afs_fid "$img")
[ -n "$fid" ] || fail "no FID for $img: $(afs_admin fs getfid -path "$img" 2>&1)"
[ "$(afslock_count "$fid")" = 0 ] || fail "the new image $name is locked: $(cat "$AFSLOCK_OUT")"
afslock_try "$fid" write || fail "the second client was refused the free $name: $AFSLOCK_CODE"
xt_step "the second client (afslock) locked and released the free $name ($fid): lockCount 0, SetLock(write) $AFSLOCK_CODE"
# afslock's other credentials, once: the admin's AFS token of a PAG (aklog's, from a Kerberos
# ticket), read from openafs.ko; the stages use -as (the server key), which needs neither.
afs_admin afslock -server "$AFS_ADDR" -fid "$fid" status > "$B/token.out" 2>&1
xt_step "afslock with the admin's token instead of -as: $(tr '\n' ' ' < "$B/token.out")"

# 1. Read-only: the guest checks the pattern dom0 wrote and holds the disk until dom0 detaches it.
afs_admin xtio fill "$img" --seed $ro_seed $(xtio_layout) > "$B/fill.out" 2>&1 ||
  { show fill "$B/fill.out"; fail "xtio fill $img failed"; }
GUEST_DISK_EXPECTED='I/O error, dev xvda, sector [0-9]+ op 0x1:\(WRITE\)'
guest_start xt-lkro "vdev=xvda,access=ro,$AFS_SPEC,target=$img" $ro_seed "xt.mode=ro xt.hold=300"
guest_wait_line xt-lkro '^XT HOLD' "$GUEST_TIMEOUT"
"$AFSFILE" status > "$B/status.ro" 2>&1
grep -q "sh held .*$name" "$B/status.ro" || { show status "$B/status.ro"; fail "the worker does not hold a shared lock of $img"; }
n=$(afslock_count "$fid")
[ "$n" = 1 ] || fail "lockCount $n while $name is attached read-only (expected 1)"
afslock_try "$fid" read || fail "the second client was refused a read lock beside the read-only attach: $AFSLOCK_CODE"
r_code=$AFSLOCK_CODE
n2=$(afslock_count "$fid")
[ "$n2" = 1 ] || fail "lockCount $n2 after the second client's read lock was released (expected 1)"
afslock_try "$fid" write && fail "the second client got a write lock while $name is attached read-only"
xt_step "attached ro: lockCount 1; the second client's SetLock(read) $r_code (released: lockCount $n2), SetLock(write) refused: $AFSLOCK_CODE"
xl block-detach xt-lkro xvda > "$B/detach.ro" 2>&1 || { show detach "$B/detach.ro"; fail "xl block-detach of the read-only disk failed"; }
guest_wait xt-lkro
GUEST_DISK_EXPECTED=
wait_until 60 afslock_try "$fid" write || fail "the second client did not get $name within 60 s of the read-only detach"
xt_step "after the read-only detach the second client got the write lock"

# 2. Read-write: the guest writes its pattern and waits for dom0's mark.
guest_start xt-lkrw "vdev=xvda,access=rw,$AFS_SPEC,target=$img" 27 "xt.mode=save xt.markwait=900"
"$AFSFILE" status > "$B/status.rw" 2>&1
grep -q "ex held .*$name" "$B/status.rw" || { show status "$B/status.rw"; fail "the worker does not hold the lock of $img"; }
n=$(afslock_count "$fid")
[ "$n" = -1 ] || fail "lockCount $n while $name is attached read-write (expected -1)"
afslock_try "$fid" write && fail "the second client got the write lock of $name attached read-write: two writers"
w_code=$AFSLOCK_CODE
afslock_try "$fid" read && fail "the second client got a read lock of $name attached read-write"
xt_step "attached rw: lockCount -1; the second client's SetLock(write) refused: $w_code, SetLock(read) refused: $AFSLOCK_CODE"
xt_metric "openafs-second rw_lockcount=$n write_refused=${w_code% *} read_refused=${AFSLOCK_CODE% *}"

guest_wait_line xt-lkrw '^XT SAVE-READY' "$GUEST_TIMEOUT"
afs_admin sh -c ". /xentest/lib.sh; image_mark $img XTGO" || fail "cannot mark $img"
guest_wait xt-lkrw
t0=$(now_s)
wait_until 60 afslock_try "$fid" write || fail "the second client did not get $name within 60 s of the detach"
xt_step "after the rw detach the second client got the write lock ($(($(now_s) - t0)) s)"

# 3. The second client holds the write lock: dom0's rw attach is refused as in use.
afslock_hold "$fid" write
guest_cfg xt-lkrw2 "vdev=xvda,access=rw,$AFS_SPEC,target=$img" 27 "xt.mode=save" > "$B/lkrw2.cfg"
if timeout 120 xl create "$B/lkrw2.cfg" > "$B/lkrw2.create" 2>&1; then
  show "xl create" "$B/lkrw2.create"
  timeout 30 xl destroy xt-lkrw2
  afslock_unhold
  fail "dom0 attached $img read-write while the second client holds its lock"
fi
show "xl create" "$B/lkrw2.create"
wait_until 20 sh -c '! xl domid xt-lkrw2 >/dev/null 2>&1' || timeout 30 xl destroy xt-lkrw2
err=$(grep -m1 'script: ' "$B/lkrw2.create" | sed 's/.*script: //')
afslock_unhold
case $err in
  *"in use by another host"*) xt_step "while the second client holds $name, dom0's rw attach is refused: $err" ;;
  *) fail "xl create failed, but not with the image-in-use error: $(create_error "$B/lkrw2.create")" ;;
esac
[ "$(afslock_count "$fid")" = 0 ] || fail "lockCount $(afslock_count "$fid") after the second client's release"

# 4. Adoption across a worker restart (measured): kill -9 of the worker, its device process
# keeps the lock for the next worker, whose device process adopts it; then the detach.
# Every block of region C written (no time bound): the image holds xt-lkrw's blocks, and the
# guest's writes stall while no worker serves (from the kill to the adoption), which would leave
# some of them unwritten, and read back as another guest's data.
guest_start xt-lkad "vdev=xvda,access=rw,$AFS_SPEC,target=$img" 29 "xt.mode=save xt.markwait=900 xt.rand_seconds=100000"
dev_pid=$(json_field "/run/afsfile/status/dev-$(guest_domid xt-lkad)-$XVDA.json" pid)
wpid=$(worker_pid)
[ -n "$wpid" ] && kill -0 "$wpid" || fail "no worker pid in status/worker.json"
from=$(($(wc -l < "$AFSFILE_LOG") + 1))
kill -KILL "$wpid"
wait_until 30 sh -c "! kill -0 $wpid 2>/dev/null" || fail "the worker $wpid did not end"
xt_step "kill -9 of the worker $wpid (device process ${dev_pid:-?})"
afslock_try "$fid" write && fail "the second client got the lock while the device process hands it on"
afs_start_renew_worker || fail "renew/worker did not start again"
wait_until 90 sh -c "\"$AFSFILE\" status 2>&1 | grep -q 'ex adopted .*$name'" || {
  "$AFSFILE" status > "$B/status.ad" 2>&1; show status "$B/status.ad"
  tail -n +"$from" "$AFSFILE_LOG" | grep -E 'lock|adopt|hand' | tail -n 20 > "$B/worker.ad"; show worker "$B/worker.ad"
  fail "the new worker's device did not adopt the lock of $img"; }
n=$(afslock_count "$fid")
afslock_try "$fid" write && fail "the second client got the adopted lock of $name"
# "keeper": the pid in the status file's lock object (indented one level deeper than json_field reads).
keeper=$(sed -n 's/^    "keeper": \([0-9]*\),\{0,1\}$/\1/p' "/run/afsfile/status/dev-$(guest_domid xt-lkad)-$XVDA.json" | head -n 1)
[ -n "$keeper" ] && [ "$(cat "/proc/$keeper/comm" 2>/dev/null)" = afsfile-lock ] ||
  fail "the adopted lock names no living keeper (keeper '$keeper')"
xt_step "the new worker's device adopted the lock (its keeper $keeper): lockCount $n, the second client refused: $AFSLOCK_CODE"
guest_wait_line xt-lkad '^XT SAVE-READY' "$GUEST_TIMEOUT"
afs_admin sh -c ". /xentest/lib.sh; image_mark $img XTGO" || fail "cannot mark $img"
guest_wait xt-lkad
t0=$(now_s)
if wait_until 60 afslock_try "$fid" write; then
  xt_step "adoption: after the detach the second client got the lock ($(($(now_s) - t0)) s): the keeper's exit released it"
  xt_metric "openafs-adoption released=1 seconds=$(($(now_s) - t0))"
else
  n=$(afslock_count "$fid")
  [ -n "$keeper" ] && [ -d "/proc/$keeper" ] && k="alive ($(cat /proc/$keeper/status | grep -E 'State|PPid' | tr '\n' ' '))" || k=gone
  fail "adoption: 60 s after the detach the lock is still held on the file server (lockCount $n, SetLock(write) $AFSLOCK_CODE); its keeper $keeper: $k"
fi

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died"; }
afs_image_remove "$img"
exit 0
