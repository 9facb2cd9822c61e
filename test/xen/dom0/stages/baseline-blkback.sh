#!/bin/sh
# The reference: Linux xen-blkback on a loop device (Xen's default `block`
# script) over an image file. The guest writes and checks its pattern, dom0
# checks the image; the guest's numbers are the performance anchor.
. /xentest/lib.sh

lsmod | grep -q '^xen_blkback' || fail "xen-blkback is not loaded"
img=$IMAGES/base.img
make_image "$img"
guest_run xt-base "vdev=xvda,access=rw,target=$img" 1
verify_image "$img" 1
/usr/sbin/losetup -a | grep -q "$img" && fail "a loop device still holds $img after the guest ended"
exit 0
