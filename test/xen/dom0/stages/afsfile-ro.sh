#!/bin/sh
# access=ro: the guest sees a read-only disk, its writes fail (also after
# `blockdev --setrw`), its reads return the image's bytes; the image is
# unchanged afterwards. Linux refuses both writes itself (EPERM: --setrw clears
# only the block device's flag, blkfront's read-only gendisk stays), so no write
# reaches afsfile; its own refusal (BLKIF_RSP_ERROR) is unit-tested (src/blkif/validate).
. /xentest/lib.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker is not running"; }
img=$IMAGES/r.img
seed=7
make_image "$img"
xtio fill "$img" --seed $seed $(xtio_layout) > /run/xentest/fill.out 2>&1 ||
  { show fill /run/xentest/fill.out; fail "xtio fill $img failed"; }
before=$(md5sum < "$img" | cut -d' ' -f1)
xt_step "filled $img with the pattern of seed $seed (md5 $before)"

# Should a write get past the guest's block layer, the backend's error shows as this.
GUEST_DISK_EXPECTED='I/O error, dev xvda, sector [0-9]+ op 0x1:\(WRITE\)'
guest_run xt-ro "vdev=xvda,access=ro,$AFS_SPEC,target=$img" $seed "xt.mode=ro"
con=$(guest_console xt-ro)
grep -q '^XT RO sysfs ro=1 blockdev --getro=1' "$con" || fail "the guest did not see a read-only disk"
n=$(guest_count xt-ro '^XTIO REFUSED')
[ "$n" -eq 2 ] || fail "the guest reported $n refused writes, expected 2"
guest_log xt-ro | grep '^XTIO REFUSED' | sed 's/^/  [refused] /'
after=$(md5sum < "$img" | cut -d' ' -f1)
[ "$before" = "$after" ] || fail "$img changed during the read-only attach (md5 $before -> $after)"
xtio verify "$img" --seed $seed $(xtio_layout) > /run/xentest/verify.ro 2>&1 ||
  { show verify /run/xentest/verify.ro; fail "$img no longer holds its pattern"; }
xt_step "dom0: $img unchanged (md5 $after)"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died during the stage"; }
rm -f "$img"
exit 0
