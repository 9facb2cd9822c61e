#!/bin/sh
# The tap route (Xen >= 4.19): install afsfile and start its worker while kernel
# xen-blkback stays LOADED (it serves backend/vbd; afsfile takes backend/vbd3).
# `afsfile check` must name the vbd3 route.
. /xentest/lib.sh

lsmod | grep -q '^xen_blkback' || fail "xen-blkback is not loaded (the tap route runs beside it)"
[ -d /sys/bus/xen-backend/drivers/vbd ] || fail "the kernel vbd backend driver is not registered"
AFSFILE_KEEP_BLKBACK=1 sh /xentest/stages/afsfile-setup.sh || exit 1
lsmod | grep -q '^xen_blkback' || fail "xen-blkback was unloaded"
grep -q 'vbd3' /run/xentest/check.log || fail "afsfile check does not name the vbd3 route on Xen $XEN_VERSION"
exit 0
