#!/bin/sh
# Issue 18 with the OpenAFS client: the lock lease across token renewals. The OpenAFS client
# extends every flock it holds once a minute with its daemon's own credentials (src/afs/
# afs_daemons.c -> afs_vcache.c afs_FlushActiveVcaches(1), afs_osi_credp), and the file server
# checks no right on an extension (viced/afsfileprocs.c SAFSS_ExtendLock): a lock does not
# lapse with the token of the process that took it, so the device leaves it with its keeper
# after a renewal (lock-fs.ts lockFollowsKey), and the device's reopens close its own open files
# freely: the keeper owns the lock (lock-fs.ts lockNeedsKeeper). Measured here:
#   control: a lock on a file of its own, taken by a shell in a PAG with a token of the same
#     short lifetime that is never renewed: does it ever end while the shell holds it?
#   the device: renew with a short lifetime (renewals every half of it), a guest writing and
#     checking its disk all along (xt.mode=soak); the second client is refused the image's lock
#     at every try until the first token's expiry + the 300 s lease + a margin has passed;
#     then the guest's data is checked in the namei file and the lock ends with the detach.
# The second client must be another client, not the same cache manager (which arbitrates its own
# processes' locks locally), and kAFS cannot be loaded beside openafs.ko (both register the file
# system type "afs"): it is afslock (afs/afslock.sh), a user-space client that asks the file
# server itself (FetchStatus's lockCount, SetLock, ReleaseLock) over an Rx connection of its own.
# (Bookworm's afsio, tried first, aborted in its Kerberos setup before any call.)
. /xentest/lib.sh
. /xentest/afs/lib.sh
. /xentest/afs/afslock.sh

[ "$AFS_CLIENT" = openafs ] || fail "needs the OpenAFS client (afs-openafs-client)"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile renew/worker is not running"; }
LIFETIME=${AFS_LEASE_LIFETIME:-100}
LEASE=300
functional_io
SEQ_MB=4 BUF_MB=2 RAND_MB=1 RAND_OPS=64
IMAGE_MB=$((SEQ_MB + BUF_MB + RAND_MB + 30 + AFS_MB_BIAS)) # a size of its own: its namei file is found by size
D=$AFS_DIR/xt-lock-openafs
name=xt-lease-openafs.img
img=$D/$name
ctl=$D/xt-lease-openafs-control
afslock_init
B=$AFSLOCK_DIR
# second_lock FID: 0 the second client got the write lock (released again at once), 1 refused.
second_lock() { afslock_try "$1" write; }
fid_of() { afs_fid "$1"; }

# renew again with the short lifetime (afs-openafs-worker's has hours).
old=$(cat "$AFSFILE_PIDFILE")
kill "$old"; kill -CONT "$old" 2>/dev/null
wait_until 30 sh -c "! kill -0 $old 2>/dev/null" || fail "the previous renew/worker did not stop"
from=$(($(wc -l < "$AFSFILE_LOG") + 1))
AFS_RENEW_ARGS="--lifetime ${LIFETIME}s --margin 30s" afs_start_renew_worker || fail "renew got no token"
xt_step "renew with a ${LIFETIME} s ticket lifetime (renewed about every $((LIFETIME / 2)) s)"
lease_exit() {
  [ -f "$B/ctl.pid" ] && kill "$(cat "$B/ctl.pid")" 2>/dev/null
  tail -n +"$from" "$AFSFILE_LOG" | grep -E 'lock|renewed|reopen|lost' | tail -n 20 > "$B/worker"
  show "worker: renewals and the lock" "$B/worker"
}
trap lease_exit EXIT

# The directory, the control file; first the second client itself: it must get a free file's lock.
afs_admin mkdir -p "$D" || fail "cannot make $D"
afs_admin fs listacl "$D" > "$B/acl" 2>&1; show acl "$B/acl"
afs_admin sh -c "echo control > $ctl" || fail "cannot create $ctl"
ctl_fid=$(fid_of "$ctl")
[ -n "$ctl_fid" ] || fail "no FID for $ctl: $(afs_admin fs getfid -path "$ctl" 2>&1)"
second_lock "$ctl_fid" || fail "the second client (afslock) cannot lock a free file ($ctl, $ctl_fid): $AFSLOCK_CODE"
xt_step "the second client (afslock) locked and unlocked the free $ctl ($ctl_fid)"

# The control: a lock whose token lapses and is never renewed.
KRB5CCNAME=FILE:$B/ctl.cc SHELL=/bin/sh pagsh -c "
  kinit -l ${LIFETIME}s -k -t '$AFS_ADMIN_KEYTAB' '$AFS_ADMIN' && aklog -c '$AFS_CELL' || exit 99
  exec flock -x '$ctl' sh -c 'echo \$\$ > $B/ctl.tmp; mv $B/ctl.tmp $B/ctl.pid; exec sleep 1500'
" > "$B/ctl.out" 2>&1 &
wait_until 60 test -s "$B/ctl.pid" || { show control "$B/ctl.out"; fail "the control lock was not taken"; }
t_ctl=$(date +%s)
second_lock "$ctl_fid" && fail "the second client got the control lock just taken"
xt_step "control: $ctl locked by a shell whose token (${LIFETIME} s) is never renewed; the second client is refused ($AFSLOCK_CODE, lockCount $(afslock_count "$ctl_fid"))"

# The device: the guest writes and checks its disk again and again.
afs_image_create "$img" "$IMAGE_MB"
fid=$(fid_of "$img")
[ -n "$fid" ] || fail "no FID for $img"
guest_start xt-lease "vdev=xvda,access=rw,$AFS_SPEC,target=$img" 29 "xt.mode=soak xt.soak=1500"
t_att=$(date +%s)
"$AFSFILE" status > "$B/status1" 2>&1
grep -q "ex held .*$name" "$B/status1" || { show status "$B/status1"; fail "the worker does not hold the lock of $img"; }

# Until the first token's expiry + the lease + a margin: the image's lock is refused at every
# try; the control's is looked at too (the measurement).
end=$((t_att + LIFETIME + LEASE + 40))
ctl_free= ctl_tries=0 tries=0
while :; do
  now=$(date +%s)
  if [ -z "$ctl_free" ]; then
    second_lock "$ctl_fid" && { ctl_free=$(date +%s); xt_step "control: the second client got $ctl $((ctl_free - t_ctl)) s after it was locked"; }
    ctl_tries=$((ctl_tries + 1))
  fi
  if second_lock "$fid"; then
    tail -n +"$from" "$AFSFILE_LOG" | grep -E 'lock|renew' | tail -n 20 > "$B/worker.now"; show worker "$B/worker.now"
    fail "the second client got the lock of $name $((now - t_att)) s after the attach (try $((tries + 1))): two writers"
  fi
  tries=$((tries + 1))
  bad=$(guest_disk_error xt-lease)
  [ -n "$bad" ] && guest_fail xt-lease "" "guest disk error: $bad"
  [ "$now" -ge "$end" ] && break
  sleep 8
done
n=$(afslock_count "$fid")
[ "$n" = -1 ] || fail "lockCount $n of $name at the end of the tries (expected -1)"
xt_step "the second client was refused $name at all $tries tries over $((now - t_att)) s from the attach (last: $AFSLOCK_CODE, lockCount $n), past the first token's expiry ($LIFETIME s) + the lease ($LEASE s)"
[ -n "$ctl_free" ] || xt_step "control: never free in $((now - t_ctl)) s ($ctl_tries tries), its token lapsed $((now - t_ctl - LIFETIME)) s ago: the client extends it without the token"
"$AFSFILE" status > "$B/status2" 2>&1
show "afsfile status" "$B/status2"
grep -q "ex held .*$name" "$B/status2" || fail "the worker does not hold the lock of $img any more"
renewals=$(tail -n +"$from" "$AFSFILE_LOG" | grep -c 'image reopened')
moves=$(tail -n +"$from" "$AFSFILE_LOG" | grep -c 'taken again with the renewed key')
[ "$renewals" -ge 2 ] || fail "only $renewals renewals reopened the image (every $((LIFETIME / 2)) s)"
[ "$moves" -eq 0 ] || fail "the lock was moved $moves times on OpenAFS (it should stay on its open file)"
tail -n +"$from" "$AFSFILE_LOG" | grep -q 'stays on its open file' || fail "the device did not say that the lock stays"
runs=$(guest_count xt-lease '^XT SOAK-RUN')
xt_step "$renewals renewals reopened the image, the lock stayed with its keeper; the guest wrote and checked its disk $runs times"
xt_metric "openafs-lease control_free_s=${ctl_free:+$((ctl_free - t_ctl))} image_tries=$tries image_span_s=$((now - t_att)) lifetime_s=$LIFETIME renewals=$renewals"

# The end: the guest's data on the server, the lock gone with the detach.
afs_admin sh -c ". /xentest/lib.sh; image_mark $img XTGO" || fail "cannot mark $img"
guest_wait xt-lease
nf=$(afs_namei_file $((IMAGE_MB * 1048576)))
[ "$(echo "$nf" | grep -c .)" -eq 1 ] || fail "expected one namei file of $IMAGE_MB MiB, found: $nf"
verify_image "$nf" 29
t0=$(date +%s)
wait_until 60 second_lock "$fid" || fail "the second client did not get the lock within 60 s of the device's detach"
xt_step "after the detach the second client locked $name ($(($(date +%s) - t0)) s)"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died"; }
afs_image_remove "$img"
kill "$(cat "$B/ctl.pid")" 2>/dev/null; rm -f "$B/ctl.pid"
afs_admin rm -f "$ctl"
afs_admin rmdir "$D"
exit 0
