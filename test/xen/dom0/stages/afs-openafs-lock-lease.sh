#!/bin/sh
# Issue 18 with the OpenAFS client: the lock lease across token renewals. The OpenAFS client
# extends every flock it holds once a minute with its daemon's own credentials (src/afs/
# afs_daemons.c -> afs_vcache.c afs_FlushActiveVcaches(1), afs_osi_credp), and the file server
# checks no right on an extension (viced/afsfileprocs.c SAFSS_ExtendLock): a lock does not
# lapse with the token of the process that took it, so the device leaves it on its first open
# file after a renewal (lock-fs.ts lockFollowsKey). Measured here:
#   control: a lock on a file of its own, taken by a shell in a PAG with a token of the same
#     short lifetime that is never renewed: does it ever end while the shell holds it?
#   the device: renew with a short lifetime (renewals every half of it), a guest writing and
#     checking its disk all along (xt.mode=soak); the second client is refused the image's lock
#     at every try until the first token's expiry + the 300 s lease + a margin has passed;
#     then the guest's data is checked in the namei file and the lock ends with the detach.
# The second client must be another client, not the same cache manager (which arbitrates its own
# processes' locks locally), and kAFS cannot be loaded beside openafs.ko (both register the file
# system type "afs"): it is afsio (openafs-client), a user-space AFS client (libafscp: its own
# Rx endpoint and callback service, so a host of its own to the file server). Bookworm's afsio
# asks Kerberos for a DES ticket (libafscp _GetSecurityObject), which the KDC does not issue: it
# calls anonymously, so the stage's directory grants system:anyuser rlk, and its tries are for a
# shared lock (k; the device's exclusive lock refuses those too). `afsio fidlock` asks the file
# server for the file's status and, while the server counts a lock on it (lockCount, which
# accounts for a lapsed lease already), waits for a callback; it sets the lock (FS.SetLock) only
# when the count is 0. So a try still waiting after a few seconds is a refusal by the file
# server; a try that gets the lock releases it at once (afsio fidunlock; the server checks no
# right on a release). afsio exits 0 on its errors too: its output tells them apart.
. /xentest/lib.sh
. /xentest/afs/lib.sh

[ "$AFS_CLIENT" = openafs ] || fail "needs the OpenAFS client (afs-openafs-client)"
command -v afsio > /dev/null || fail "no afsio in dom0 (openafs-client's, added by host/build-afs.sh)"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile renew/worker is not running"; }
LIFETIME=${AFS_LEASE_LIFETIME:-100}
LEASE=300
functional_io
SEQ_MB=4 BUF_MB=2 RAND_MB=1 RAND_OPS=64
IMAGE_MB=$((SEQ_MB + BUF_MB + RAND_MB + 30 + AFS_MB_BIAS)) # a size of its own: its namei file is found by size
D=$AFS_DIR/xt-lock-openafs # system:anyuser rlk here: afsio calls anonymously
name=xt-lease-openafs.img
img=$D/$name
ctl=$D/xt-lease-openafs-control
B=/run/xentest/afsio
rm -rf "$B" && mkdir -p "$B"

# afsio: no ticket (anonymous, see above), the cell from /etc/openafs/ThisCell, the realm named
# (without it libafscp asks Kerberos for the VL server's realm, and crashes on none).
N=0
afsio_run() { KRB5CCNAME=FILE:$B/none afsio "$@" -realm "$AFS_REALM"; }
# second_lock FID SECONDS: 0 the second client got a shared lock (released again at once), 1 it
# was refused (still waiting after SECONDS), 2 an error. Output in $B/out.N.
second_lock() {
  local rc try=0
  while :; do
    N=$((N + 1))
    timeout "$2" sh -c 'KRB5CCNAME=FILE:$0/none exec afsio fidlock -fid "$1" -readlock -realm "$2"' "$B" "$1" "$AFS_REALM" \
      > "$B/out.$N" 2>&1
    rc=$?
    # (bookworm's afsio sometimes dies of SIGSEGV in its setup: tried again once)
    [ $rc = 139 ] && [ $try = 0 ] && { try=1; continue; }
    break
  done
  case $rc in
    0) grep -q '^afsio:' "$B/out.$N" && return 2
       afsio_run fidunlock -fid "$1" >> "$B/out.$N" 2>&1
       return 0 ;;
    124|143) return 1 ;; # timeout (coreutils 124, busybox: killed by SIGTERM)
  esac
  echo "afsio exit $rc" >> "$B/out.$N"
  return 2
}
fid_of() { # the AFS FID (volume.vnode.uniquifier) of a file, from the cache manager
  afs_admin fs getfid -path "$1" 2>&1 | sed -n 's/.*(\([0-9]*\.[0-9]*\.[0-9]*\)).*/\1/p' | head -n 1
}

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
afs_admin fs setacl -dir "$D" -acl system:anyuser rlk || fail "cannot grant system:anyuser rlk on $D"
afs_admin fs listacl "$D" > "$B/acl" 2>&1; show acl "$B/acl"
afs_admin sh -c "echo control > $ctl" || fail "cannot create $ctl"
ctl_fid=$(fid_of "$ctl")
[ -n "$ctl_fid" ] || fail "no FID for $ctl: $(afs_admin fs getfid -path "$ctl" 2>&1)"
second_lock "$ctl_fid" 30 || { show afsio "$B/out.$N"; fail "the second client (afsio) cannot lock a free file ($ctl, $ctl_fid)"; }
xt_step "the second client (afsio) locked and unlocked the free $ctl ($ctl_fid)"

# The control: a lock whose token lapses and is never renewed.
KRB5CCNAME=FILE:$B/ctl.cc SHELL=/bin/sh pagsh -c "
  kinit -l ${LIFETIME}s -k -t '$AFS_ADMIN_KEYTAB' '$AFS_ADMIN' && aklog -c '$AFS_CELL' || exit 99
  exec flock -x '$ctl' sh -c 'echo \$\$ > $B/ctl.tmp; mv $B/ctl.tmp $B/ctl.pid; exec sleep 1500'
" > "$B/ctl.out" 2>&1 &
wait_until 60 test -s "$B/ctl.pid" || { show control "$B/ctl.out"; fail "the control lock was not taken"; }
t_ctl=$(date +%s)
second_lock "$ctl_fid" 5
case $? in 0) fail "the second client got the control lock just taken" ;; 2) show afsio "$B/out.$N"; fail "afsio failed" ;; esac
xt_step "control: $ctl locked by a shell whose token (${LIFETIME} s) is never renewed; the second client is refused"

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
    second_lock "$ctl_fid" 4
    case $? in
      0) ctl_free=$(date +%s); xt_step "control: the second client got $ctl $((ctl_free - t_ctl)) s after it was locked" ;;
      2) show afsio "$B/out.$N"; fail "afsio failed on the control" ;;
    esac
    ctl_tries=$((ctl_tries + 1))
  fi
  second_lock "$fid" 6
  case $? in
    0) tail -n +"$from" "$AFSFILE_LOG" | grep -E 'lock|renew' | tail -n 20 > "$B/worker.now"; show worker "$B/worker.now"
       fail "the second client got the lock of $name $((now - t_att)) s after the attach (try $((tries + 1))): two writers" ;;
    2) show afsio "$B/out.$N"; fail "afsio failed on $name" ;;
  esac
  tries=$((tries + 1))
  bad=$(guest_disk_error xt-lease)
  [ -n "$bad" ] && guest_fail xt-lease "" "guest disk error: $bad"
  [ "$now" -ge "$end" ] && break
  sleep 8
done
xt_step "the second client was refused $name at all $tries tries over $((now - t_att)) s from the attach"
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
xt_step "$renewals renewals reopened the image, the lock stayed on its first open file; the guest wrote and checked its disk $runs times"
xt_metric "openafs-lease control_free_s=${ctl_free:+$((ctl_free - t_ctl))} image_tries=$tries image_span_s=$((now - t_att)) lifetime_s=$LIFETIME renewals=$renewals"

# The end: the guest's data on the server, the lock gone with the detach.
afs_admin sh -c ". /xentest/lib.sh; image_mark $img XTGO" || fail "cannot mark $img"
guest_wait xt-lease
nf=$(afs_namei_file $((IMAGE_MB * 1048576)))
[ "$(echo "$nf" | grep -c .)" -eq 1 ] || fail "expected one namei file of $IMAGE_MB MiB, found: $nf"
verify_image "$nf" 29
t0=$(date +%s)
second_lock "$fid" 60 || { show afsio "$B/out.$N"; fail "the second client did not get the lock within 60 s of the device's detach"; }
xt_step "after the detach the second client locked $name ($(($(date +%s) - t0)) s)"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died"; }
afs_image_remove "$img"
kill "$(cat "$B/ctl.pid")" 2>/dev/null; rm -f "$B/ctl.pid"
afs_admin rm -f "$ctl"
afs_admin rmdir "$D"
exit 0
