#!/bin/bash
# afslock against a bare OpenAFS file server on this host, in seconds: the test cell of a
# prepared 4.17 dom0 tree (prepare.sh) started in a copy of that tree, inside new network,
# mount, pid and uts namespaces (as host/build-afs.sh makes the cell: nothing of the host's
# AFS, Kerberos or network is touched), then the lock calls of the afs-lock-openafs stages with
# -as the cell administrator (no cache manager here): the write lock excludes every other lock, read locks
# coexist, a release frees the file. Run as root: test/xen/tools/afslock-check.sh [TREE]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tree=${1:-$here/.build/4.17/rootfs/dom0}
[ -x "$tree/usr/bin/afslock" ] || { echo "afslock-check: no $tree/usr/bin/afslock (run prepare.sh --xen 4.17)" >&2; exit 2; }
work=$(mktemp -d /tmp/afslock-check.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -a "$tree" "$work/root"
cat > "$work/root/afslock-check.sh" <<'IN'
#!/bin/sh
# The dom0 stages' helpers (afs/afslock.sh) against the bare file server.
. /xentest/lib.sh
. /xentest/afs/cell.sh
. /xentest/afs/afslock.sh
fail() { echo "afslock-check: FAIL: $*"; tail -n 5 "$AFS_LOG/FileLog"; exit 1; }
show() { echo "== $1"; cat "$2"; }
ip link set lo up && ip addr add "$AFS_ADDR/32" dev lo && hostname dom0
afs_start_kdc && afs_start_db && afs_start_fs || fail "the cell did not start"
mkdir -p /run/xentest && afslock_init
vid=$(vos examine "$AFS_VOLUME" -localauth | awk 'NR == 1 {print $2}')
# The new volume root grants system:administrators all: the file is made there.
afslock_run "$vid.1.1" create lockme || fail "no file created: $(cat "$AFSLOCK_OUT")"
fid=$(sed -n 's/^fid //p' "$AFSLOCK_OUT")
[ "$(afslock_count "$fid")" = 0 ] || fail "a new file is locked"
afslock_hold "$fid" write
[ "$(afslock_count "$fid")" = -1 ] || fail "lockCount $(afslock_count "$fid") under a write lock"
afslock_try "$fid" write && fail "a second write lock was not refused"
w=$AFSLOCK_CODE
afslock_try "$fid" read && fail "a read lock beside a write lock was not refused"
echo "write lock held: lockCount -1, a second write lock refused ($w), a read lock refused ($AFSLOCK_CODE)"
afslock_unhold
[ "$(afslock_count "$fid")" = 0 ] || fail "lockCount $(afslock_count "$fid") after the release"
afslock_hold "$fid" read
[ "$(afslock_count "$fid")" = 1 ] || fail "lockCount $(afslock_count "$fid") under one read lock"
afslock_try "$fid" read || fail "a second read lock was refused: $AFSLOCK_CODE"
[ "$(afslock_count "$fid")" = 1 ] || fail "lockCount $(afslock_count "$fid") after the second reader's release"
afslock_try "$fid" write && fail "a write lock beside a read lock was not refused"
echo "read lock held: lockCount 1, a second read lock granted and released, a write lock refused ($AFSLOCK_CODE)"
afslock_unhold
[ "$(afslock_count "$fid")" = 0 ] || fail "lockCount $(afslock_count "$fid") after the last release"
wait_until 5 afslock_try "$fid" write || fail "the free file's write lock was refused"
echo "afslock-check: PASS"
IN
chmod 755 "$work/root/afslock-check.sh"
# shellcheck disable=SC2016
unshare --net --mount --pid --uts --fork --propagation private sh -euc '
  root=$1
  mount -t proc proc "$root/proc"
  mount -t tmpfs tmpfs "$root/dev" && for n in null zero random urandom; do cp -a "/dev/$n" "$root/dev/$n"; done
  mount -t tmpfs tmpfs "$root/run"
  mount -t tmpfs tmpfs "$root/tmp"
  exec chroot "$root" /afslock-check.sh
' sh "$work/root"
