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
guest_wait_line xt-quota '^XTIO START' "$GUEST_TIMEOUT"
sleep 20
afs_worker_errors "$from" > /run/xentest/quota-errors
show "worker while over quota" /run/xentest/quota-errors
vos setfields -id "$AFS_VOLUME" -maxquota 0 -localauth || fail "vos setfields failed"
xt_step "quota lifted"
afs_guest_end xt-quota $img 41
afs_worker_errors "$from" > /run/xentest/quota-errors
show "worker: held/failed I/O" /run/xentest/quota-errors
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died"; }
exit 0
