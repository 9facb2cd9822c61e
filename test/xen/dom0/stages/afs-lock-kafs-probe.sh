#!/bin/sh
# Issue 18 diagnosis (kAFS): a lock whose release failed (its key lapsed) - can a LOCK_NB flock
# of the same client, with a fresh key, ever take it again? Holder: a shell with a 40 s token
# that is never renewed; killed after its key lapsed (its release cannot reach the server).
. /xentest/lib.sh
. /xentest/afs/lib.sh
. /xentest/afs/second.sh
[ "$AFS_CLIENT" = kafs ] || fail "needs kAFS"
LIFETIME=40 LEASE=300
f=xt-probe-lock
T=/sys/kernel/tracing
B=$SECOND_DIR
[ -d "$T/events" ] || mount -t tracefs nodev "$T" 2>/dev/null
echo 0 > "$T/tracing_on"; echo 0 > "$T/events/enable"; echo 8192 > "$T/buffer_size_kb"; echo > "$T/trace"
for e in afs_flock_ev afs_flock_op afs_make_fs_call afs_make_fs_calli afs_call_done; do echo 1 > "$T/events/afs/$e/enable"; done
echo 1 > "$T/tracing_on"
probe_exit() {
  [ -f /run/xentest/probe.pid ] && kill "$(cat /run/xentest/probe.pid)" 2>/dev/null
  echo 0 > "$T/tracing_on"
  grep -v '^#' "$T/trace" > /run/xentest/probe.trace
  v=$(printf '%x' "$(afs_admin stat -c %i "$AFS_DIR/$f" 2>/dev/null)" 2>/dev/null)
  echo "vnode $v"
  grep -E "(:$v:|SetLock|ReleaseLock|ExtendLock|FetchStatus)" /run/xentest/probe.trace | grep -v 'afs_call_done.*ret=0 ab=0' |
    sed 's/^ *//; s/^\([^ ]*\) *\[[0-9]*\] [^ ]* /\1 /' | tail -n 400 | sed 's/^/  [trace] /'
  second_stop
}
afs_admin sh -c "echo probe > $AFS_DIR/$f" || fail "cannot create $AFS_DIR/$f"
second_start
trap probe_exit EXIT
rm -f /run/xentest/probe.pid
KRB5CCNAME=FILE:/run/xentest/probe.cc keyctl session - sh -c "
  kinit -l ${LIFETIME}s -k -t '$AFS_ADMIN_KEYTAB' '$AFS_ADMIN' && aklog-kafs '$AFS_CELL' || exit 99
  exec flock -x '$AFS_DIR/$f' sh -c 'echo \$\$ > /run/xentest/probe.pid; exec sleep 1500'
" > /run/xentest/probe.out 2>&1 &
wait_until 60 test -s /run/xentest/probe.pid || { show holder /run/xentest/probe.out; fail "not locked"; }
t0=$(date +%s)
el() { echo $(($(date +%s) - t0)); }
xt_step "PROBE holder locked $f at $(date -u +%T) with a ${LIFETIME} s token"
nb() { # nb WHERE: a LOCK_NB try of dom0 (fresh admin key) or of the second client
  if [ "$1" = dom0 ]; then afs_admin flock -n -x "$AFS_DIR/$f" true; r=$?
  else SECOND_QUIET=1 second 40 "afs_admin flock -n -x /afs2/$f true; echo rc=\$?"; r=$(sed -n 's/^rc=//p' "$B/out.$SECOND_N"); fi
  xt_step "PROBE t=$(el) $(date -u +%T) $1 LOCK_NB rc=$r"
}
nb dom0; nb second
sleep $((LIFETIME + 10))
kill "$(cat /run/xentest/probe.pid)"; rm -f /run/xentest/probe.pid
sleep 3
xt_step "PROBE t=$(el) holder killed after its key lapsed (release with the lapsed key)"
dmesg | tail -n 5 | sed 's/^/  [dmesg] /'
nb dom0; nb second
t1=$(date +%s); afs_admin flock -w 7 -x "$AFS_DIR/$f" true; r=$?
xt_step "PROBE t=$(el) dom0 blocking flock -w 7 (old lease running) rc=$r after $(($(date +%s) - t1)) s"
while [ "$(el)" -lt $((LEASE + 25)) ]; do
  nb dom0; nb second
  stat "$AFS_DIR/$f" > /dev/null
  sleep 30
done
xt_step "PROBE t=$(el): past the old lease's end (set at t=0, $LEASE s)"
nb dom0; nb second; nb dom0
t1=$(date +%s); afs_admin flock -w 30 -x "$AFS_DIR/$f" sh -c 'echo held; sleep 2'; r=$?
xt_step "PROBE t=$(el) dom0 blocking flock -w 30 rc=$r after $(($(date +%s) - t1)) s"
sleep 2
nb second; nb dom0
afs_admin rm -f "$AFS_DIR/$f"
exit 0
