#!/bin/sh
# Case 1 (issue 16): a real blkfront guest on an image in AFS. Its verified pattern (O_DIRECT
# and buffered) ends with an fsync (FLUSH); while the guest still runs, dom0 checks the pattern
# in the volume's namei file on /vicepa, i.e. on the file server, not through the writing
# client's cache. Then ext2 made, used and checked in a second guest, and e2fsck of that
# image's namei file.
. /xentest/lib.sh
. /xentest/afs/lib.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile renew/worker is not running"; }
# rxkad under TCG writes a few MB/s: a short workload.
SEQ_MB=8 BUF_MB=4 RAND_MB=2 RAND_OPS=256
functional_io
IMAGE_MB=$((SEQ_MB + BUF_MB + RAND_MB + 16 + AFS_MB_BIAS))
size=$((IMAGE_MB * 1048576))
img=$AFS_DIR/xt-rw-$AFS_CLIENT.img
seed=21
from=$(($(wc -l < "$AFSFILE_LOG") + 1))
afs_image_create $img $IMAGE_MB
guest_start xt-afs "vdev=xvda,access=rw,$AFS_SPEC,target=$img" $seed "xt.mode=save"
guest_wait_line xt-afs '^XT SAVE-READY' "$GUEST_TIMEOUT"
result=$(guest_log xt-afs | sed -n 's/^XTIO RESULT //p' | tail -n 1)
[ -n "$result" ] && xt_metric "$result"
GUEST_RAND_WRITTEN=$(echo "$result" | tr ' ' '\n' | sed -n 's/^rand_write_blocks=//p')
nf=$(afs_namei_file $size)
[ -n "$nf" ] || fail "no namei file of $size bytes under /vicepa"
[ "$(echo "$nf" | wc -l)" -eq 1 ] || fail "several namei files of $size bytes: $nf"
xt_step "the image's data file on the server: $nf"
verify_image "$nf" $seed
verified=$(sed -n 's/.*XTIO VERIFIED .* bytes=\([0-9]*\).*/\1/p' "/run/xentest/verify.$XT_STAGE" | tail -n 1)
xt_step "after the guest's FLUSH the server holds its pattern (${verified:-?} bytes; $(afs_allocated_kib "$nf") KiB allocated)"
t0=$(now_s)
afs_admin sh -c ". /xentest/lib.sh; image_mark $img XTGO" || fail "cannot mark $img"
xt_step "mark written by the administrator in $(($(now_s) - t0))s"
guest_wait xt-afs
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died"; }
xt_metric "$(afs_io_summary "$from" rw)" "rw_verified_bytes=${verified:-0}"
afs_image_remove $img

img=$AFS_DIR/xt-fs-$AFS_CLIENT.img
afs_image_create $img $((IMAGE_MB + 2))
guest_run xt-afsfs "vdev=xvda,access=rw,$AFS_SPEC,target=$img" 9 "xt.mode=fs"
guest_log xt-afsfs | grep -q '^XT FS e2fsck clean' || fail "the guest did not run e2fsck"
nf=$(afs_namei_file $(((IMAGE_MB + 2) * 1048576)))
[ -n "$nf" ] || fail "no namei file for $img"
/usr/sbin/e2fsck -fn "$nf" > /run/xentest/fsck.out 2>&1
rc=$?
show "server-side e2fsck" /run/xentest/fsck.out
[ $rc -eq 0 ] || fail "e2fsck -fn of the server's copy of $img exited with status $rc"
xt_step "the server's copy of the guest's file system is clean"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died"; }
afs_image_remove $img
exit 0
