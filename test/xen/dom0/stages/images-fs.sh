#!/bin/sh
# An ext4 file system on a RAM disk at /images, for the guests' image files.
# (tmpfs on this kernel refuses O_DIRECT; ext4 takes it.)
. /xentest/lib.sh

size_mb=$(cmdline_arg xentest.images_mb); : "${size_mb:=384}"
modprobe brd rd_nr=1 rd_size=$((size_mb * 1024)) || fail "modprobe brd failed"
[ -b /dev/ram0 ] || fail "no /dev/ram0"
# Lazy inode table init: zeroing them up front takes ~15 s under TCG, and a
# fresh brd is all zeroes anyway (hence also noinit_itable below).
/usr/sbin/mke2fs -q -F -t ext4 -E lazy_itable_init=1,lazy_journal_init=1 /dev/ram0 || fail "mke2fs failed"
mkdir -p "$IMAGES"
mount -t ext4 -o noinit_itable /dev/ram0 "$IMAGES" || fail "cannot mount /dev/ram0 on $IMAGES"
df -h "$IMAGES" | sed 's/^/  [df] /'

# O_DIRECT must work on /images (a small run of the guest tool on a file).
dd if=/dev/zero of="$IMAGES/probe.img" bs=1M count=4 2>/dev/null
xtio run "$IMAGES/probe.img" --seq-mb 1 --buf-mb 1 --rand-mb 1 --rand-ops 16 > /run/xentest/probe 2>&1 ||
  { show probe /run/xentest/probe; fail "O_DIRECT I/O on $IMAGES does not work"; }
rm -f "$IMAGES/probe.img"
