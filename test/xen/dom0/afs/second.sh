# A second AFS client in dom0 (busybox sh; source after lib.sh and afs/lib.sh): kAFS again, in a
# network namespace of its own. kAFS keeps one client per network namespace (Linux fs/afs
# main.c afs_net_init: its own rxrpc endpoint, UUID, cells and superblocks), which reaches the
# file server over a veth pair, so the file server sees two hosts and arbitrates locks itself
# (SetLock/ReleaseLock). The second host is a shell in new network and mount namespaces that
# runs the commands dom0 writes for it, as the cell's administrator; it mounts the images
# volume at /afs2. Needs kAFS (openafs.ko and kafs cannot be loaded together: both are 'afs').
SECOND_DIR=/run/xentest/second
SECOND_NET=10.99.2 # the veth pair's subnet (dom0 .1, the second host .2)
SECOND_N=0

# second_start: the second host's namespaces, network and kAFS mount. Fails the stage if not.
second_start() {
  local B=$SECOND_DIR peer t0
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
  SECOND_PID=$!
  trap second_stop EXIT
  # Its network: a veth pair, its end moved into the second host's namespace.
  sleep 0.5
  modprobe veth 2>/dev/null
  ip link add xt2h type veth || fail "cannot make a veth pair (veth module: $(modprobe veth 2>&1))"
  peer=$(ip link show xt2h | sed -n 's/^[0-9]*: xt2h@\([^:]*\):.*/\1/p')
  [ -n "$peer" ] || fail "no peer of xt2h: $(ip link show xt2h)"
  ip link set "$peer" netns "$SECOND_PID" || fail "cannot move $peer to the second host"
  ip addr add "$SECOND_NET.1/24" dev xt2h && ip link set xt2h up || fail "cannot set up xt2h"
  second 30 "ip link set lo up && ip link set $peer name xt2 && ip addr add $SECOND_NET.2/24 dev xt2 &&
    ip link set xt2 up && ip route add default via $SECOND_NET.1 && ping -c 1 -W 5 $AFS_ADDR" ||
    fail "the second host cannot reach the file server's address $AFS_ADDR"
  # Its kAFS client: the cell in its namespace's /proc/net/afs, the images volume at /afs2.
  t0=$(now_s)
  if ! second 90 "echo 'add $AFS_CELL $AFS_ADDR' > /proc/net/afs/cells && mkdir -p /afs2 &&
    afs_retry 60 afs_admin mount -t afs '%$AFS_CELL:$AFS_VOLUME.' /afs2 && afs_admin ls -la /afs2"; then
    second 30 "cat /proc/net/afs/cells /proc/net/afs/servers 2>&1; dmesg | tail -n 20"
    tail -n 40 /sys/kernel/tracing/trace 2>/dev/null | sed 's/^/  [trace] /'
    fail "the second kAFS client (its own network namespace) cannot mount the images volume"
  fi
  xt_step "second kAFS client (network namespace, $SECOND_NET.2) mounted $AFS_VOLUME at /afs2 in $(($(now_s) - t0))s"
}

# second SECONDS SCRIPT: run SCRIPT on the second host (with lib.sh and afs/lib.sh), wait for it;
# its output is shown (SECOND_QUIET=1: not), its exit status returned; its output is in
# $SECOND_DIR/out.$SECOND_N.
second() {
  local B=$SECOND_DIR
  SECOND_N=$((SECOND_N + 1))
  printf '. /xentest/lib.sh; . /xentest/afs/lib.sh; %s\n' "$2" > "$B/tmp.$SECOND_N" && mv "$B/tmp.$SECOND_N" "$B/cmd.$SECOND_N"
  wait_until "$1" test -f "$B/rc.$SECOND_N" || {
    show "second host" "$B/out.$SECOND_N"; fail "the second host did not finish: $2"; }
  [ "${SECOND_QUIET:-}" = 1 ] || show "second host" "$B/out.$SECOND_N"
  return "$(cat "$B/rc.$SECOND_N")"
}

# The second host and what it holds end (the EXIT trap of second_start; a stage with a trap of
# its own calls it there).
second_stop() {
  [ -f "$SECOND_DIR/holder.pid" ] && kill "$(cat "$SECOND_DIR/holder.pid")" 2>/dev/null
  [ -n "${SECOND_PID:-}" ] && kill "$SECOND_PID" 2>/dev/null
  ip link del xt2h 2>/dev/null
  return 0
}
