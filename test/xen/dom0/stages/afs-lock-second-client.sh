#!/bin/sh
# Issue 18, the AFS part: a second AFS client is refused the image lock the first one holds, and
# the first is refused while the second holds it. Two workers on one client would be arbitrated
# by the local VFS and prove nothing about the file server. The second client is kAFS again, in
# a network namespace of its own: kAFS keeps one client per network namespace (Linux fs/afs
# main.c afs_net_init: its own rxrpc endpoint, UUID, cells and superblocks), which reaches the
# file server over a veth pair, so the file server sees two hosts and arbitrates the lock itself
# (SetLock/ReleaseLock). The second host is a shell in new network and mount namespaces that
# runs the commands dom0 writes for it, as the cell's administrator.
. /xentest/lib.sh
. /xentest/afs/lib.sh

[ "$AFS_CLIENT" = kafs ] || fail "needs kAFS (openafs.ko and kafs cannot be loaded together: both are 'afs')"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile renew/worker is not running"; }
functional_io
SEQ_MB=4 BUF_MB=2 RAND_MB=1 RAND_OPS=64
IMAGE_MB=$((SEQ_MB + BUF_MB + RAND_MB + 16))
name=xt-lock-kafs.img
img=$AFS_DIR/$name
B=/run/xentest/second
NET2=10.99.2 # the veth pair's subnet (dom0 .1, the second host .2)
rm -rf "$B" && mkdir -p "$B"

# The second host: runs $B/cmd.N (N = 1, 2, ...) in turn, output in $B/out.N, status in $B/rc.N.
cat > "$B/host.sh" <<EOF
n=0
while :; do
  n=\$((n + 1))
  while [ ! -f $B/cmd.\$n ]; do sleep 0.2; done
  sh $B/cmd.\$n > $B/out.\$n 2>&1
  echo \$? > $B/rc.\$n
done
EOF
unshare -n -m --propagation private sh "$B/host.sh" > "$B/host.log" 2>&1 &
host2=$!
cleanup() {
  [ -f "$B/holder.pid" ] && kill "$(cat "$B/holder.pid")" 2>/dev/null
  kill "$host2" 2>/dev/null
  ip link del xt2h 2>/dev/null
}
trap cleanup EXIT
N=0
# second SECONDS SCRIPT: run SCRIPT on the second host (with lib.sh and afs/lib.sh), wait for it;
# its output is shown, its exit status returned.
second() {
  N=$((N + 1))
  printf '. /xentest/lib.sh; . /xentest/afs/lib.sh; %s\n' "$2" > "$B/tmp.$N" && mv "$B/tmp.$N" "$B/cmd.$N"
  wait_until "$1" test -f "$B/rc.$N" || { show "second host" "$B/out.$N"; fail "the second host did not finish: $2"; }
  show "second host" "$B/out.$N"
  return "$(cat "$B/rc.$N")"
}

# Its network: a veth pair, its end moved into the second host's namespace.
sleep 0.5
modprobe veth 2>/dev/null
ip link add xt2h type veth || fail "cannot make a veth pair (veth module: $(modprobe veth 2>&1))"
peer=$(ip link show xt2h | sed -n 's/^[0-9]*: xt2h@\([^:]*\):.*/\1/p')
[ -n "$peer" ] || fail "no peer of xt2h: $(ip link show xt2h)"
ip link set "$peer" netns "$host2" || fail "cannot move $peer to the second host"
ip addr add "$NET2.1/24" dev xt2h && ip link set xt2h up || fail "cannot set up xt2h"
second 30 "ip link set lo up && ip link set $peer name xt2 && ip addr add $NET2.2/24 dev xt2 &&
  ip link set xt2 up && ip route add default via $NET2.1 && ping -c 1 -W 5 $AFS_ADDR" ||
  fail "the second host cannot reach the file server's address $AFS_ADDR"

# Its kAFS client: the cell in its namespace's /proc/net/afs, the images volume at /afs2.
t0=$(now_s)
if ! second 90 "echo 'add $AFS_CELL $AFS_ADDR' > /proc/net/afs/cells && mkdir -p /afs2 &&
  afs_retry 60 afs_admin mount -t afs '%$AFS_CELL:$AFS_VOLUME.' /afs2 && afs_admin ls -la /afs2"; then
  second 30 "cat /proc/net/afs/cells /proc/net/afs/servers 2>&1; dmesg | tail -n 20"
  tail -n 40 /sys/kernel/tracing/trace 2>/dev/null | sed 's/^/  [trace] /'
  fail "the second kAFS client (its own network namespace) cannot mount the images volume"
fi
xt_step "second kAFS client (network namespace, $NET2.2) mounted $AFS_VOLUME at /afs2 in $(($(now_s) - t0))s"

# 1. dom0's worker holds the lock of a running guest's image: the second client is refused.
afs_image_create "$img" "$IMAGE_MB"
guest_start xt-lk "vdev=xvda,access=rw,$AFS_SPEC,target=$img" 27 "xt.mode=save xt.markwait=900"
"$AFSFILE" status > "$B/status1" 2>&1
grep -q "ex held .*$name" "$B/status1" || { show status "$B/status1"; fail "the worker does not hold the lock of $img"; }
second 60 "afs_admin flock -n -x /afs2/$name true; echo \"exclusive rc=\$?\";
  afs_admin flock -n -s /afs2/$name true; echo \"shared rc=\$?\""
grep -q '^exclusive rc=1$' "$B/out.$N" || fail "the second client was not refused the exclusive lock: $(cat "$B/out.$N")"
grep -q '^shared rc=1$' "$B/out.$N" || fail "the second client was not refused a shared lock: $(cat "$B/out.$N")"
xt_step "while dom0's worker holds $name, the second client is refused an exclusive and a shared lock"

# 2. The guest ends, its device closes the image: the second client gets the lock (the file
# server breaks callbacks at the release; kAFS may retry).
guest_wait_line xt-lk '^XT SAVE-READY' "$GUEST_TIMEOUT"
afs_admin sh -c ". /xentest/lib.sh; image_mark $img XTGO" || fail "cannot mark $img"
guest_wait xt-lk
t0=$(now_s)
second 90 "afs_retry 60 afs_admin flock -n -x /afs2/$name true" ||
  fail "the second client did not get the lock within 60 s of the device's detach"
xt_step "after the detach the second client locked $name ($(($(now_s) - t0))s)"

# 3. The second client holds the lock: dom0's attach of the image is refused as busy. (The
# holder's command writes its pid, then sleeps: killing it ends flock and its lock.)
second 30 "afs_admin flock -w 60 -x /afs2/$name sh -c 'echo \$\$ > $B/held.tmp; mv $B/held.tmp $B/held; exec sleep 600' \
  > $B/holder.out 2>&1 &"
wait_until 90 test -s "$B/held" || { show holder "$B/holder.out"; fail "the second client could not take the lock"; }
cp "$B/held" "$B/holder.pid"
guest_cfg xt-lk2 "vdev=xvda,access=rw,$AFS_SPEC,target=$img" 27 "xt.mode=save" > "$B/lk2.cfg"
if timeout 120 xl create "$B/lk2.cfg" > "$B/lk2.create" 2>&1; then
  show "xl create" "$B/lk2.create"
  timeout 30 xl destroy xt-lk2
  fail "dom0 attached $img read-write while the second client holds its lock"
fi
show "xl create" "$B/lk2.create"
wait_until 20 sh -c '! xl domid xt-lk2 >/dev/null 2>&1' || timeout 30 xl destroy xt-lk2
err=$(grep -m1 'script: ' "$B/lk2.create" | sed 's/.*script: //')
case $err in
  *"in use by another host"*) xt_step "while the second client holds $name, dom0's rw attach is refused: $err" ;;
  *) fail "xl create failed, but not with the image-in-use error: $(create_error "$B/lk2.create")" ;;
esac

kill "$(cat "$B/holder.pid")" 2>/dev/null
rm -f "$B/holder.pid"
second 30 "umount /afs2" || true
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died"; }
afs_image_remove "$img"
exit 0
