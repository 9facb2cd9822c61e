#!/bin/sh
# Case 4 (issue 16): the volume's quota is set below its usage while a guest writes (an image
# does not grow, so only a volume already over quota refuses its stores); 20 s later it is
# lifted. Reports where the error showed (errno, call); the guest must see no error and every
# byte it wrote must then be in the server's namei file.
. /xentest/lib.sh
. /xentest/afs/lib.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile renew/worker is not running"; }
SEQ_MB=8 BUF_MB=4 RAND_MB=2 RAND_OPS=256
functional_io
IMAGE_MB=$((SEQ_MB + BUF_MB + RAND_MB + 20 + AFS_MB_BIAS)) # 34 MiB: a size of its own (namei file found by size)
img=$AFS_DIR/xt-quota-$AFS_CLIENT.img
from=$(($(wc -l < "$AFSFILE_LOG") + 1))
afs_guest_begin xt-quota $img 41
vos setfields -id "$AFS_VOLUME" -maxquota 1 -localauth || fail "vos setfields failed"
vos examine "$AFS_VOLUME" -localauth > /run/xentest/quota.vos 2>&1
show "vos examine" /run/xentest/quota.vos
xt_step "quota of $AFS_VOLUME set to 1 KB (below its usage)"
# The file server charges a file's length, not its blocks: an image made at its full size never
# grows, so its writes never meet the quota. With AFS_QUOTA_FULL=1 the partition itself fills up
# too (its tmpfs shrunk to what it holds plus 1 MiB): the server's writes of the guest's data fail.
if [ "${AFS_QUOTA_FULL:-0}" = 1 ]; then
  used=$(df -k /vicepa | awk 'NR == 2 {print $3}')
  mount -o remount,size=$((used + 1024))k /vicepa || fail "cannot shrink /vicepa"
  xt_step "/vicepa shrunk to ${used} KiB + 1 MiB: $(afs_vicep_used)"
fi
afs_wait_written xt-quota $((2 * 1048576))
xt_step "the guest has written 2 MiB"
sleep 20
afs_worker_errors "$from" > /run/xentest/quota-errors
show "worker while over quota" /run/xentest/quota-errors
vos setfields -id "$AFS_VOLUME" -maxquota 0 -localauth || fail "vos setfields failed"
[ "${AFS_QUOTA_FULL:-0}" = 1 ] && { mount -o remount,size=${AFS_VICEP_MB}m /vicepa || fail "cannot grow /vicepa"; }
xt_step "quota lifted${AFS_QUOTA_FULL:+, /vicepa back to ${AFS_VICEP_MB} MiB ($(afs_vicep_used))}"
afs_guest_end xt-quota $img 41
afs_worker_errors "$from" > /run/xentest/quota-errors
show "worker: held/failed I/O" /run/xentest/quota-errors
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died"; }
xt_metric "$(afs_io_summary "$from" quota)" "quota_verified_bytes=${AFS_VERIFIED_BYTES:-0}"
afs_image_remove $img
exit 0
