#!/bin/sh
# Issue 18, the AFS lease after a token renewal. kAFS extends a lock (every 150 s; the file server
# drops it 300 s after the last extension) with the key of the open file that took it, and a
# renewal is a new key (fs/afs/flock.c afs_lock_work, vnode->lock_key): once the first key
# lapses, every extension fails and the server drops the lock while the device, its image
# reopened with the new key, writes on. So the device takes the lock again through a new open
# file after each renewal (device-lock.ts rekey). Measured here:
#   control: a lock on a file of its own, taken by a shell with a token of the same short
#     lifetime that is never renewed: when does the second client (afs/second.sh) get it?
#   the device: renew with a short lifetime (renewals every half of it), a guest writing and
#     checking its disk all along (xt.mode=soak); the second client must be refused the image's
#     lock at every try, until the first token's expiry + the lease + a margin has passed; then
#     the guest's data is checked in the namei file and the lock ends with the detach.
# The second client's tries on the image do not wait (LOCK_NB, as another dom0's attach would):
# the guest's stores break its callback, so its kAFS asks the file server afresh each time. On
# the control nothing is written: a waiting flock (-w) makes its kAFS ask the server.
. /xentest/lib.sh
. /xentest/afs/lib.sh
. /xentest/afs/second.sh

[ "$AFS_CLIENT" = kafs ] || fail "needs kAFS (the second client is kAFS in a network namespace)"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile renew/worker is not running"; }
LIFETIME=${AFS_LEASE_LIFETIME:-100}
LEASE=300
functional_io
SEQ_MB=4 BUF_MB=2 RAND_MB=1 RAND_OPS=64
IMAGE_MB=$((SEQ_MB + BUF_MB + RAND_MB + 30)) # a size of its own: its namei file is found by size
name=xt-lease-kafs.img
img=$AFS_DIR/$name
ctl=xt-lease-control
B=$SECOND_DIR
T=/sys/kernel/tracing

# renew again with the short lifetime (afs-worker's has hours): renewals every half of it.
old=$(cat "$AFSFILE_PIDFILE")
kill "$old"
wait_until 30 sh -c "! kill -0 $old 2>/dev/null" || fail "the previous renew/worker did not stop"
from=$(($(wc -l < "$AFSFILE_LOG") + 1))
AFS_RENEW_ARGS="--lifetime ${LIFETIME}s --margin 30s" afs_start_renew_worker || fail "renew got no token"
xt_step "renew with a ${LIFETIME} s ticket lifetime (renewed about every $((LIFETIME / 2)) s)"

# kAFS's lock events (include/trace/events/afs.h afs_flock_ev): extensions, failures.
[ -d "$T/events" ] || mount -t tracefs nodev "$T" 2>/dev/null
if [ -d "$T/events/afs/afs_flock_ev" ]; then
  echo 0 > "$T/tracing_on"; echo 0 > "$T/events/enable"; echo 4096 > "$T/buffer_size_kb"; echo > "$T/trace"
  echo 1 > "$T/events/afs/afs_flock_ev/enable"; echo 1 > "$T/tracing_on"
fi
lease_exit() {
  [ -f /run/xentest/lease-ctl.pid ] && kill "$(cat /run/xentest/lease-ctl.pid)" 2>/dev/null
  echo 0 > "$T/tracing_on" 2>/dev/null
  second_stop
}
trap lease_exit EXIT

# The control: a lock whose key lapses and is never renewed.
afs_admin sh -c "echo control > $AFS_DIR/$ctl" || fail "cannot create $AFS_DIR/$ctl"
rm -f /run/xentest/lease-ctl.pid
KRB5CCNAME=FILE:/run/xentest/lease-ctl.cc keyctl session - sh -c "
  kinit -l ${LIFETIME}s -k -t '$AFS_ADMIN_KEYTAB' '$AFS_ADMIN' && aklog-kafs '$AFS_CELL' || exit 99
  exec flock -x '$AFS_DIR/$ctl' sh -c 'echo \$\$ > /run/xentest/lease-ctl.pid; exec sleep 1500'
" > /run/xentest/lease-ctl.out 2>&1 &
wait_until 60 test -s /run/xentest/lease-ctl.pid || { show control /run/xentest/lease-ctl.out; fail "the control lock was not taken"; }
t_ctl=$(now_s)
xt_step "control: $ctl locked by a shell whose token (${LIFETIME} s) is never renewed"

# The device: the guest writes and checks its disk again and again.
afs_image_create "$img" "$IMAGE_MB"
guest_start xt-lease "vdev=xvda,access=rw,$AFS_SPEC,target=$img" 29 "xt.mode=soak xt.soak=1500"
t_att=$(now_s)
"$AFSFILE" status > "$B.status1" 2>&1
grep -q "ex held .*$name" "$B.status1" || { show status "$B.status1"; fail "the worker does not hold the lock of $img"; }
second_start
trap lease_exit EXIT

# Until the first token's expiry + the lease + a margin: the image's lock is refused at every
# try; the control's becomes free at some point (the measurement).
end=$((t_att + LIFETIME + LEASE + 40))
ctl_free= tries=0
while :; do
  now=$(now_s)
  if [ -z "$ctl_free" ]; then
    SECOND_QUIET=1 second 40 "afs_admin flock -w 4 -x /afs2/$ctl true; echo rc=\$?" || true
    if grep -q '^rc=0$' "$B/out.$SECOND_N"; then
      ctl_free=$(now_s)
      xt_step "control: the second client got $ctl $((ctl_free - t_ctl)) s after it was locked (its key lapsed at about $LIFETIME s)"
    fi
  fi
  SECOND_QUIET=1 second 40 "afs_admin flock -n -x /afs2/$name true; echo rc=\$?" || true
  tries=$((tries + 1))
  if ! grep -q '^rc=1$' "$B/out.$SECOND_N"; then
    show "second host" "$B/out.$SECOND_N"
    tail -n +"$from" "$AFSFILE_LOG" | grep -E 'lock|renew' | tail -n 20 > "$B.worker"; show worker "$B.worker"
    fail "the second client got the lock of $name $((now - t_att)) s after the attach (try $tries): two writers"
  fi
  bad=$(guest_disk_error xt-lease)
  [ -n "$bad" ] && guest_fail xt-lease "" "guest disk error: $bad"
  [ "$now" -ge "$end" ] && break
  sleep 10
done
xt_step "the second client was refused $name at all $tries tries over $((now - t_att)) s from the attach"
[ -n "$ctl_free" ] || xt_step "note: the control lock was never free within $((now - t_ctl)) s of being taken"
xt_metric "lease control_free_s=${ctl_free:+$((ctl_free - t_ctl))} image_tries=$tries image_span_s=$((now - t_att)) lifetime_s=$LIFETIME"

"$AFSFILE" status > "$B.status2" 2>&1
show "afsfile status" "$B.status2"
grep -q "ex held .*$name" "$B.status2" || fail "the worker does not hold the lock of $img any more"
tail -n +"$from" "$AFSFILE_LOG" | grep 'taken again with the renewed key' > "$B.rekeys"
show "the lock taken again" "$B.rekeys"
rekeys=$(grep -c . "$B.rekeys")
[ "$rekeys" -ge 2 ] || fail "the image lock was taken again $rekeys times (renewals every $((LIFETIME / 2)) s)"
ms=$(sed -n 's/.*after \([0-9]*\) ms.*/\1/p' "$B.rekeys" | tr '\n' ' ')
xt_step "the image lock was taken again after each of $rekeys renewals, writes held for: $ms ms"
runs=$(guest_count xt-lease '^XT SOAK-RUN')
xt_step "the guest wrote and checked its disk $runs times meanwhile"
# (tracefs files have no size: copied first)
grep -v '^#' "$T/trace" > "$B.trace" 2>/dev/null
if [ -s "$B.trace" ]; then
  for f in "$AFS_DIR/$ctl" "$img"; do
    v=$(printf '%x' "$(afs_admin stat -c %i "$f")")
    xt_step "kAFS lock events on $(basename "$f") (vnode $v): $(grep -c ":$v:" "$B.trace") in all, $(grep ":$v:" "$B.trace" | grep -c -i 'fail') failures"
  done
  grep -i 'fail' "$B.trace" | head -n 6 | sed 's/^/  [trace] /'
fi

# The end: the guest's data on the server, the lock gone with the detach.
afs_admin sh -c ". /xentest/lib.sh; image_mark $img XTGO" || fail "cannot mark $img"
guest_wait xt-lease
nf=$(afs_namei_file $((IMAGE_MB * 1048576)))
[ "$(echo "$nf" | grep -c .)" -eq 1 ] || fail "expected one namei file of $IMAGE_MB MiB, found: $nf"
verify_image "$nf" 29
second 90 "afs_retry 60 afs_admin flock -n -x /afs2/$name true" ||
  fail "the second client did not get the lock within 60 s of the device's detach"
xt_step "after the detach the second client locked $name"
second 30 "umount /afs2" || true
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died"; }
afs_image_remove "$img"
afs_admin rm -f "$AFS_DIR/$ctl"
exit 0
