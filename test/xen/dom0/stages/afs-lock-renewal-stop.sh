#!/bin/sh
# Issue 18: a lock held past its token's expiry while renewal is stopped (kAFS). kAFS extends the
# lock (every 150 s; the file server drops it 300 s after it was set or last extended) with the
# key of the open file that took it, which the device takes again after each renewal
# (device-lock.ts rekey). Here renew is stopped (SIGSTOP) right after the device took the lock
# with a fresh key, the guest writing and checking its disk all along (xt.mode=soak):
#   - the token gate holds the writes from 30 s before the key lapses: from the lapse until the
#     renewal nothing reaches the file server (the image's namei file is not written);
#   - the lock set with that key is not extended any more (the key lapsed before its first
#     extension) and ends on the file server 300 s after it was set: until then the second kAFS
#     client (afs/second.sh) is refused at every try, with a waiting flock (which makes its kAFS
#     ask the server), and the device's lock never shows lost;
#   - renew goes on (SIGCONT) 40 s after the lapse: the device reopens the image, the lock's
#     release with the lapsed key cannot reach the server, so the device writes on while the
#     old lock surely stands and holds its writes from then until its new lock is granted, when
#     the old one has ended on the server;
#   - the guest goes on: no disk error, its data verified in the namei file, the lock ends with
#     the detach.
# The second client pauses its tries from 15 s before the old lock's end until the device has its
# new lock: at the end of a lease that lapsed the lock is nobody's, and the first to ask gets it
# (a try then could take it: the device would count it lost, rightly, and refuse every write);
# after it, its tries do not wait (below).
. /xentest/lib.sh
. /xentest/afs/lib.sh
. /xentest/afs/second.sh

[ "$AFS_CLIENT" = kafs ] || fail "needs kAFS (the OpenAFS client extends its locks itself: afs-openafs-lock-lease)"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile renew/worker is not running"; }
LIFETIME=${AFS_STOP_LIFETIME:-80}
STOPPED=${AFS_STOP_PAST:-40} # seconds after the lapse that renew goes on
LEASE=300
functional_io
SEQ_MB=4 BUF_MB=2 RAND_MB=1 RAND_OPS=64
IMAGE_MB=$((SEQ_MB + BUF_MB + RAND_MB + 31)) # a size of its own: its namei file is found by size
name=xt-stop-kafs.img
img=$AFS_DIR/$name
B=$SECOND_DIR
T=/sys/kernel/tracing

old=$(cat "$AFSFILE_PIDFILE")
kill "$old"; kill -CONT "$old" 2>/dev/null
wait_until 30 sh -c "! kill -0 $old 2>/dev/null" || fail "the previous renew/worker did not stop"
from=$(($(wc -l < "$AFSFILE_LOG") + 1))
AFS_RENEW_ARGS="--lifetime ${LIFETIME}s --margin 30s" afs_start_renew_worker || fail "renew got no token"
renew_pid=$(sed -n 's/^  "pid": \([0-9]*\),$/\1/p' /run/afsfile/status/renew.json)
[ -n "$renew_pid" ] && kill -0 "$renew_pid" || fail "no renew loop pid in renew.json"
xt_step "renew (pid $renew_pid) with a ${LIFETIME} s ticket lifetime (renewed about every $((LIFETIME / 2)) s)"

[ -d "$T/events" ] || mount -t tracefs nodev "$T" 2>/dev/null
if [ -d "$T/events/afs/afs_flock_ev" ]; then
  echo 0 > "$T/tracing_on"; echo 0 > "$T/events/enable"; echo 4096 > "$T/buffer_size_kb"; echo > "$T/trace"
  echo 1 > "$T/events/afs/afs_flock_ev/enable"; echo 1 > "$T/events/afs/afs_flock_op/enable"
  echo 1 > "$T/tracing_on"
fi
# kAFS's lock events on the image (once): how the lock was taken back, or why it was not: the
# release that failed, the tries (SetLock refused while the old lease stood), the grant.
traced=
lock_trace() {
  [ -n "$traced" ] && return 0
  traced=1
  echo 0 > "$T/tracing_on" 2>/dev/null
  grep -v '^#' "$T/trace" > "$B.trace" 2>/dev/null
  [ -s "$B.trace" ] || return 0
  v=$(printf '%x' "$(afs_admin stat -c %i "$img")")
  xt_step "kAFS lock events on $name (vnode $v): $(grep -c ":$v:" "$B.trace") in all, $(grep ":$v:" "$B.trace" | grep -c -i 'fail') failures"
  grep ":$v:" "$B.trace" | grep -i 'fail' | head -n 6 | sed 's/^/  [trace] /'
  grep ":$v:" "$B.trace" | grep -E 'Rel_Fail|TryToLck|Acquired|Waiting|Waited|<-EAGAIN|<-ERROR' | tail -n 40 |
    sed 's/^ *//; s/^\([^ ]*\) *\[[0-9]*\] [^ ]* /\1 /; s/^/  [trace] /'
}
stop_exit() {
  kill -CONT "$renew_pid" 2>/dev/null
  lock_trace
  tail -n +"$from" "$AFSFILE_LOG" | grep -E 'lock|renewed|reopen|lost' | tail -n 25 > "$B.worker" 2>/dev/null
  show "worker: renewals and the lock" "$B.worker"
  second_stop
}

afs_image_create "$img" "$IMAGE_MB"
guest_start xt-stop "vdev=xvda,access=rw,$AFS_SPEC,target=$img" 31 "xt.mode=soak xt.soak=1500"
nf=$(afs_namei_file $((IMAGE_MB * 1048576)))
[ "$(echo "$nf" | grep -c .)" -eq 1 ] || fail "expected one namei file of $IMAGE_MB MiB, found: $nf"
second_start
trap stop_exit EXIT
"$AFSFILE" status > "$B.status1" 2>&1
grep -q "ex held .*$name" "$B.status1" || { show status "$B.status1"; fail "the worker does not hold the lock of $img"; }

# renew stops right after the device took its lock again with a renewed key.
moved() { tail -n +"$from" "$AFSFILE_LOG" | grep -c 'taken again with the renewed key'; }
moved_past() { [ "$(moved)" -gt "$1" ]; }
n0=$(moved)
wait_until $((LIFETIME + 30)) moved_past "$n0" ||
  fail "the image lock was not taken again after a renewal within $((LIFETIME + 30)) s"
kill -STOP "$renew_pid" || fail "cannot stop renew"
t_set=$(date +%s)
exp=$(sed -n 's/.*"ticketExpires": "\([^"]*\)".*/\1/p' /run/afsfile/status/renew.json)
exp_s=$(date -d "$(echo "$exp" | sed 's/T/ /; s/\..*//; s/Z$//')" +%s 2>/dev/null)
[ -n "$exp_s" ] || fail "cannot read the ticket expiry $exp"
t_end=$((t_set + LEASE)) # the lock's lease on the file server, set with the key that lapses
t_cont=$((exp_s + STOPPED))
xt_step "renew stopped (SIGSTOP) right after the lock was taken with a new key; the key lapses in $((exp_s - t_set)) s, the lock's lease ends on the server in $LEASE s"

# Until renew goes on: the second client is refused; the lock shows held; from the lapse on
# nothing reaches the server.
tries=0 refused=0 mt_lapse=
probe() { # one try of the second client (-w 3: waiting; -n: not); fails the stage if it gets the lock
  SECOND_QUIET=1 second 40 "afs_admin flock ${1:--w 3} -x /afs2/$name true; echo rc=\$?" || true
  tries=$((tries + 1))
  if ! grep -q '^rc=1$' "$B/out.$SECOND_N"; then
    show "second host" "$B/out.$SECOND_N"
    "$AFSFILE" status > "$B.status" 2>&1; show status "$B.status"
    fail "the second client got the lock of $name $(($(date +%s) - t_set)) s after renew stopped (try $tries)"
  fi
  refused=$((refused + 1))
}
lock_state() { "$AFSFILE" status --json 2>/dev/null | tr -d ' \n' | sed -n 's/.*"lock":{"state":"\([a-z]*\)".*/\1/p' | head -n 1; }
while [ "$(date +%s)" -lt "$t_cont" ]; do
  probe
  st=$(lock_state)
  [ "$st" = held ] || fail "the device's lock is '$st' $(($(date +%s) - t_set)) s after renew stopped"
  bad=$(guest_disk_error xt-stop); [ -n "$bad" ] && guest_fail xt-stop "" "guest disk error: $bad"
  now=$(date +%s)
  [ -z "$mt_lapse" ] && [ "$now" -ge "$exp_s" ] && mt_lapse=$(stat -c %Y "$nf")
  sleep 5
done
mt_cont=$(stat -c %Y "$nf")
[ -n "$mt_lapse" ] || fail "the key did not lapse before renew went on"
[ "$mt_cont" -le "$exp_s" ] || fail "the image was stored $((mt_cont - exp_s)) s after the key lapsed, before the renewal"
xt_step "from the lapse to the renewal ($STOPPED s) nothing reached the server (namei file last written $((exp_s - mt_cont)) s before the lapse); the second client was refused $refused times"
runs_cont=$(guest_count xt-stop '^XT SOAK-RUN')
kill -CONT "$renew_pid" || fail "cannot continue renew"
t_go=$(date +%s)
xt_step "renew goes on (SIGCONT) $((t_go - exp_s)) s after the lapse"

# The device reopens, writes on while the old lock surely stands, then holds its writes until
# the new lock is granted (when the old lease has ended on the server).
n1=$(moved)
while [ "$(date +%s)" -lt $((t_end - 15)) ]; do
  moved_past "$n1" && break
  probe
  st=$(lock_state)
  [ "$st" = held ] || [ "$st" = adopted ] || fail "the device's lock is '$st' after the renewal"
  bad=$(guest_disk_error xt-stop); [ -n "$bad" ] && guest_fail xt-stop "" "guest disk error: $bad"
  sleep 5
done
xt_step "the second client was refused $refused times in all until 15 s before the old lease's end (tries paused)"
wait_until $((t_end + 60 - $(date +%s))) moved_past "$n1" ||
  fail "the lock was not taken again within 60 s of the old lease's end"
t_lock=$(date +%s)
ms=$(tail -n +"$from" "$AFSFILE_LOG" | grep 'taken again with the renewed key' | tail -n 1 | sed -n 's/.*after \([0-9]*\) ms.*/\1/p')
xt_step "the new lock was granted $((t_lock - t_set)) s after the old one was set (lease $LEASE s), $((t_lock - t_go)) s after the renewal (the move took ${ms:-?} ms)"
st=$(lock_state)
[ "$st" = held ] || fail "the device's lock is '$st' after the move"
# The guest goes on: more runs, the second client refused again. Renewals that came during the
# move move the lock again right after it (release, then set, a gap of milliseconds each): a
# waiting try could take it in such a gap. So not waiting tries now, as another dom0's attach
# would make (the guest's stores break the second client's callback: its kAFS asks the server).
more_runs() { [ "$(guest_count xt-stop '^XT SOAK-RUN')" -gt "$1" ]; }
wait_until 120 more_runs $((runs_cont + 1)) ||
  fail "the guest did not go on after the renewal ($(guest_count xt-stop '^XT SOAK-RUN') runs)"
probe -n; sleep 5; probe -n
bad=$(guest_disk_error xt-stop); [ -n "$bad" ] && guest_fail xt-stop "" "guest disk error: $bad"
xt_metric "renewal-stop lifetime_s=$LIFETIME stopped_past_lapse_s=$STOPPED refused=$refused tries=$tries relock_after_set_s=$((t_lock - t_set)) move_ms=${ms:-} runs=$(guest_count xt-stop '^XT SOAK-RUN')"
lock_trace

afs_admin sh -c ". /xentest/lib.sh; image_mark $img XTGO" || fail "cannot mark $img"
guest_wait xt-stop
verify_image "$nf" 31
second 90 "afs_retry 60 afs_admin flock -n -x /afs2/$name true" ||
  fail "the second client did not get the lock within 60 s of the device's detach"
xt_step "after the detach the second client locked $name"
second 30 "umount /afs2" || true
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died"; }
afs_image_remove "$img"
exit 0
