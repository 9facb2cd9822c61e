#!/bin/bash
# Build the domU initramfs: busybox, xen-blkfront.ko, ext4 (which mounts ext2)
# with crc32c, e2fsck, the static xtio tool and test/xen/domu/init. Output: $CACHE/boot/domu.cpio.gz
set -euo pipefail
: "${CACHE:?}" "${HERE:?}"
. "$HERE/host/rootfs-lib.sh"

kver=$(cat "$CACHE/boot/kernel-version")
root=$CACHE/rootfs/domu

rootfs_init "$root"
add_modules "$root" "$CACHE/linux" "$kver" xen-blkfront ext4 crc32c_generic
add_bin "$root" /sbin/e2fsck /sbin/e2fsck # busybox has no fsck for ext2
add_file "$root" "$CACHE/tools/xtio" /bin/xtio
add_file "$root" "$HERE/domu/init" /init
chmod 755 "$root/init"
pack_cpio "$root" "$CACHE/boot/domu.cpio.gz" gzip
echo "domu: $(du -h "$CACHE/boot/domu.cpio.gz" | cut -f1) $CACHE/boot/domu.cpio.gz"
