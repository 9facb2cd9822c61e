#!/bin/sh
# Issue 18, the AFS part: a second AFS client is refused the image lock the first one holds, and
# the first is refused while the second holds it. Two workers on one client would be arbitrated
# by the local VFS and prove nothing about the file server. The second client is kAFS again, in
# a network namespace of its own (afs/second.sh), so the file server arbitrates the lock itself.
. /xentest/lib.sh
. /xentest/afs/lib.sh
. /xentest/afs/second.sh

[ "$AFS_CLIENT" = kafs ] || fail "needs kAFS (openafs.ko and kafs cannot be loaded together: both are 'afs')"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile renew/worker is not running"; }
functional_io
SEQ_MB=4 BUF_MB=2 RAND_MB=1 RAND_OPS=64
IMAGE_MB=$((SEQ_MB + BUF_MB + RAND_MB + 16))
name=xt-lock-kafs.img
img=$AFS_DIR/$name
B=$SECOND_DIR
second_start

# 1. dom0's worker holds the lock of a running guest's image: the second client is refused.
afs_image_create "$img" "$IMAGE_MB"
guest_start xt-lk "vdev=xvda,access=rw,$AFS_SPEC,target=$img" 27 "xt.mode=save xt.markwait=900"
"$AFSFILE" status > "$B/status1" 2>&1
grep -q "ex held .*$name" "$B/status1" || { show status "$B/status1"; fail "the worker does not hold the lock of $img"; }
second 60 "afs_admin flock -n -x /afs2/$name true; echo \"exclusive rc=\$?\";
  afs_admin flock -n -s /afs2/$name true; echo \"shared rc=\$?\""
grep -q '^exclusive rc=1$' "$B/out.$SECOND_N" || fail "the second client was not refused the exclusive lock: $(cat "$B/out.$SECOND_N")"
grep -q '^shared rc=1$' "$B/out.$SECOND_N" || fail "the second client was not refused a shared lock: $(cat "$B/out.$SECOND_N")"
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
