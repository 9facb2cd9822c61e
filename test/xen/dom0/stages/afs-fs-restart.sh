#!/bin/sh
# Case 3 (issue 16): the file server stops mid-workload for 20 s and comes back. The worker
# holds what fails (kAFS: EDESTADDRREQ / ETIME) and retries; the guest sees no error, only a
# delay; every byte it wrote is then in the server's namei file. Reports the errors the worker
# met (errno, call) and how long the guest's write phase took.
. /xentest/lib.sh
. /xentest/afs/lib.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile renew/worker is not running"; }
SEQ_MB=24 BUF_MB=4 RAND_MB=2 RAND_OPS=256
# The OpenAFS client marks a server it could not reach down and probes down servers only every
# few minutes: the hold may last that long after the file server is back.
[ "$GUEST_TIMEOUT" -lt 480 ] && GUEST_TIMEOUT=480
functional_io
IMAGE_MB=$((SEQ_MB + BUF_MB + RAND_MB + 17 + AFS_MB_BIAS)) # a size of its own: its namei file is found by size
img=$AFS_DIR/xt-restart-$AFS_CLIENT.img
from=$(($(wc -l < "$AFSFILE_LOG") + 1))
afs_guest_begin xt-restart $img 31
afs_wait_written xt-restart $((2 * 1048576))
xt_step "the guest has written 2 MiB"
t0=$(now_s)
afs_stop fileserver QUIT
afs_stop volserver TERM
xt_step "file server stopped (SIGQUIT, a clean shutdown) while the guest writes"
sleep 20
afs_start_fs || { show FileLog "$AFS_LOG/FileLog"; fail "the file server did not come back"; }
xt_step "file server back after $(($(now_s) - t0))s"
afs_guest_end xt-restart $img 31
afs_worker_errors "$from" > /run/xentest/restart-errors
show "worker: held/failed I/O" /run/xentest/restart-errors
xt_metric "restart_worker_error_lines=$(wc -l < /run/xentest/restart-errors)"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died"; }
xt_metric "$(afs_io_summary "$from" restart)" "restart_verified_bytes=${AFS_VERIFIED_BYTES:-0}"
afs_image_remove $img
exit 0
