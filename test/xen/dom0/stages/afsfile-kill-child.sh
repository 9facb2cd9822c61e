#!/bin/sh
# SIGKILL of the device child while the guest does I/O: the supervisor starts a
# new child, which takes over the ring; the guest's workload completes without
# an I/O error and dom0 checks the image. The kill comes as soon as the guest
# starts its workload (its O_DIRECT sequential write, ~30 s of I/O to go).
. /xentest/lib.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker is not running"; }
functional_io
img=$IMAGES/k.img
seed=10
make_image "$img"

# The pid of the live device child of backend BE (its own status file, checked
# against its command line: `worker --device BE`, or a spare that was assigned BE), or nothing.
child_pid() {
  local be=$1 f pid
  f=/run/afsfile/status/dev-$(echo "$be" | awk -F/ '{print $(NF-1) "-" $NF}').json
  pid=$(sed -n 's/^  "pid": \([0-9]*\),*$/\1/p' "$f" 2>/dev/null)
  [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "worker --\(device $be\|spare\)" && echo "$pid"
}
new_child() { # new_child BE OLD-PID: true once a live child other than OLD-PID serves BE
  local p
  p=$(child_pid "$1")
  [ -n "$p" ] && [ "$p" != "$2" ]
}

guest_start xt-kill "vdev=xvda,access=rw,$AFS_SPEC,target=$img" $seed
be=$(backend_of xt-kill)
guest_wait_line xt-kill '^XTIO START' "$GUEST_TIMEOUT"
pid=$(child_pid "$be")
[ -n "$pid" ] || guest_fail xt-kill "$be" "no live device child found for $be in /run/afsfile/status"
done_before=$(guest_count xt-kill '^XTIO OK')
phase=$(guest_log xt-kill | grep '^XTIO \(START\|PHASE\)' | tail -n 1 | cut -c1-60)
kill -KILL "$pid" || guest_fail xt-kill "$be" "kill -KILL $pid failed"
xt_step "SIGKILL to device child $pid of $be; guest's last line: $phase"
[ "$done_before" -eq 0 ] || guest_fail xt-kill "$be" "the guest had finished its I/O before the kill (host too slow?)"

# 60 s: a new device process (the Node executable) took 25-30 s to start under TCG on a
# host with load average 13.
wait_until 60 new_child "$be" "$pid" || guest_fail xt-kill "$be" "no new device child for $be within 60s of the SIGKILL"
xt_step "new device child $(child_pid "$be") serves $be"
grep -q "device process $pid ended with signal SIGKILL; restarting" "$AFSFILE_LOG" ||
  { show afsfile "$AFSFILE_LOG"; fail "the worker log does not report the restart of $pid"; }

guest_wait xt-kill
verify_image "$img" $seed
grep "$be" "$AFSFILE_LOG" | sed 's/^/  [afsfile] /' | tail -n 8
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died during the stage"; }
rm -f "$img"
exit 0
