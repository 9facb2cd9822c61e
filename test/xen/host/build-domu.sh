#!/bin/bash
# Build the domU initramfs: busybox, xen-blkfront.ko, ext4 (which mounts ext2)
# with crc32c, e2fsck, the static xtio tool and test/xen/domu/init. The modules
# come from the platform's kernel, the userland from the host (the guest's
# userland is not under test). Output: $BUILD/boot/domu.cpio.gz
set -euo pipefail
: "${PLATFORM:?}" "${BUILD:?}" "${HERE:?}" "${TOOLS:?}"
SYSROOT=
. "$HERE/host/rootfs-lib.sh"

kver=$(cat "$PLATFORM/kernel-version")
root=$BUILD/rootfs/domu

rootfs_init "$root"
add_modules "$root" "$PLATFORM/linux" "$kver" xen-blkfront ext4 crc32c_generic
add_bin "$root" /sbin/e2fsck /sbin/e2fsck # busybox has no fsck for ext2
add_file "$root" "$TOOLS/xtio" /bin/xtio
add_file "$root" "$HERE/domu/init" /init
chmod 755 "$root/init"
pack_cpio "$root" "$BUILD/boot/domu.cpio.gz" gzip
echo "domu: $(du -h "$BUILD/boot/domu.cpio.gz" | cut -f1) $BUILD/boot/domu.cpio.gz"
