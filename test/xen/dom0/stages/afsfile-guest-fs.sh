#!/bin/sh
# A file system on an afsfile disk: the guest makes ext2 (busybox mke2fs),
# mounts it, copies files, unmounts, mounts again and compares, and runs
# e2fsck -fn. dom0 then checks the image file itself: e2fsck -fn, and the
# copied file (mounted read-only through a loop device) has the guest's md5.
. /xentest/lib.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker is not running"; }
img=$IMAGES/f.img
make_image "$img"
guest_run xt-fs "vdev=xvda,access=rw,$AFS_SPEC,target=$img" 9 "xt.mode=fs"
guest_log xt-fs | grep -q '^XT FS e2fsck clean' || fail "the guest did not run e2fsck"
sum=$(guest_log xt-fs | sed -n 's/^XT FS data md5=\([0-9a-f]*\) .*/\1/p')
[ -n "$sum" ] || fail "the guest printed no md5 of its file"

/usr/sbin/e2fsck -fn "$img" > /run/xentest/fsck.out 2>&1
rc=$?
show "dom0 e2fsck" /run/xentest/fsck.out
[ $rc -eq 0 ] || fail "dom0: e2fsck -fn $img exited with status $rc"
mkdir -p /mnt/guestfs
mount -t ext2 -o ro,loop "$img" /mnt/guestfs || fail "dom0 cannot mount $img"
got=$(md5sum < /mnt/guestfs/dir/data | cut -d' ' -f1)
ls -l /mnt/guestfs/dir | sed 's/^/  [guest fs] /'
umount /mnt/guestfs
[ "$got" = "$sum" ] || fail "dom0 reads md5 $got for the guest's file, the guest wrote $sum"
xt_step "dom0: e2fsck clean, the guest's file has md5 $got"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died during the stage"; }
rm -f "$img"
exit 0
