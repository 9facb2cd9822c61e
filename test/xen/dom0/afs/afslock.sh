# afslock (tools/afslock.c) in the afs-lock-openafs stages (busybox sh; source after lib.sh and
# afs/lib.sh): a second AFS client beside openafs.ko, in user space. It calls the file server
# over an Rx connection of its own (its own UDP port and callback service: another host to the
# server), with a ticket for the cell's administrator forged from the server's key (-as), so it
# needs neither the KDC nor the cache manager under test. The server keeps no owner per lock,
# only a count (-1: a write lock, N: N read locks) and an expiry (viced/afsfileprocs.c
# HandleLocking); afslock releases only a lock it was granted.
AFSLOCK_DIR=/run/xentest/afslock
AFSLOCK_N=0

afslock_init() { rm -rf "$AFSLOCK_DIR" && mkdir -p "$AFSLOCK_DIR"; command -v afslock > /dev/null ||
  fail "no afslock in dom0 (tools/afslock.c, built by prepare.sh with libopenafs-dev)"; }

# afs_fid PATH: the AFS FID (volume.vnode.uniquifier) of a file, from the cache manager.
afs_fid() {
  afs_admin fs getfid -path "$1" 2>&1 | sed -n 's/.*(\([0-9]*\.[0-9]*\.[0-9]*\)).*/\1/p' | head -n 1
}

# afslock_run FID OP [KIND]: afslock's output in $AFSLOCK_OUT (also kept as $AFSLOCK_DIR/out.N),
# its status returned (0 granted/done, 1 refused by the file server, 2 an error).
afslock_run() {
  local fid=$1 rc
  shift
  AFSLOCK_N=$((AFSLOCK_N + 1))
  AFSLOCK_OUT=$AFSLOCK_DIR/out.$AFSLOCK_N
  timeout 60 afslock -as "$AFS_ADMIN" -server "$AFS_ADDR" -fid "$fid" "$@" > "$AFSLOCK_OUT" 2>&1
  rc=$?
  [ $rc -le 2 ] || echo "afslock exit $rc" >> "$AFSLOCK_OUT"
  [ $rc -le 2 ] || rc=2
  return $rc
}

# afslock_count FID: the file server's lock count of FID (fails the stage on an error).
afslock_count() {
  afslock_run "$1" status || { show afslock "$AFSLOCK_OUT"; fail "afslock status of $1 failed"; }
  sed -n 's/^lockCount \([-0-9]*\) .*/\1/p' "$AFSLOCK_OUT"
}

# afslock_try FID KIND: 0 the second client got KIND (read|write) and released it, 1 refused;
# fails the stage on an error. The file server's answer in $AFSLOCK_CODE (e.g. "49733386 UAEAGAIN").
afslock_try() {
  local rc
  afslock_run "$1" try "$2"; rc=$?
  AFSLOCK_CODE=$(sed -n "s/^setlock $2: //p" "$AFSLOCK_OUT")
  [ $rc -eq 2 ] && { show afslock "$AFSLOCK_OUT"; fail "afslock try $2 on $1 failed: $AFSLOCK_CODE"; }
  if [ $rc -eq 0 ] && ! grep -q '^releaselock: 0 ' "$AFSLOCK_OUT"; then
    show afslock "$AFSLOCK_OUT"; fail "afslock could not release the $2 lock it got on $1"
  fi
  return $rc
}

# afslock_hold FID KIND: the second client takes KIND and keeps it (extending it every 60 s)
# until afslock_unhold; fails the stage if it is not granted within 30 s.
afslock_hold() {
  rm -f "$AFSLOCK_DIR/hold.out"
  afslock -as "$AFS_ADMIN" -server "$AFS_ADDR" -fid "$1" hold "$2" > "$AFSLOCK_DIR/hold.out" 2>&1 &
  AFSLOCK_HOLDER=$!
  wait_until 30 grep -q '^held' "$AFSLOCK_DIR/hold.out" ||
    { show afslock "$AFSLOCK_DIR/hold.out"; kill "$AFSLOCK_HOLDER" 2>/dev/null; fail "the second client did not get the $2 lock of $1"; }
}

# afslock_unhold: ends the holder, which releases its lock (checked).
afslock_unhold() {
  kill "$AFSLOCK_HOLDER" 2>/dev/null
  wait "$AFSLOCK_HOLDER"
  grep -q '^releaselock: 0 ' "$AFSLOCK_DIR/hold.out" || { show afslock "$AFSLOCK_DIR/hold.out"; fail "the holder's release failed"; }
  AFSLOCK_HOLDER=
}
