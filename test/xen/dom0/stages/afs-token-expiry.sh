#!/bin/sh
# Case 2 (issue 16): the worker's token expires while the guest writes and flushes. renew runs
# with a short ticket lifetime and is stopped (SIGSTOP) right after it got tokens, so nothing
# renews them; the guest starts its workload (pattern, FLUSHes) 35 s before they lapse. The
# worker must not store with the expired key (kAFS 6.1 oopses in afs_store_data): its token
# gate answers EKEYEXPIRED to writes from 30 s and to fsync from 10 s before expiry, the engine
# holds them and keeps the data. 40 s after expiry
# renew goes on (SIGCONT): new tokens; from the renewal on, stores wait until the image is open
# again (with the new key: kAFS 6.12 dropped the stores made through the old open file), the
# kept writes are written again, the FLUSH answered. The guest must see no error; its pattern
# must then be in the namei file on the server; dom0 must still be up. Reports the errors the
# worker met, the hold, the bytes, and (kAFS) the kernel's trace of the stores: failed fs calls
# and netfs failures with their times.
#
# With AFS_EXPIRY_WRITE_MARGIN=10 (afs-openafs-expiry-fsync) the worker's write margin is the
# fsync margin (AFSFILE_TOKEN_WRITE_MARGIN) and the guest writes from 25 s before expiry, so
# data written in the last seconds before the margin is still dirty when the fsync gate closes:
# the fsync is refused, the data held and kept, and written again from the kept copy after the
# renewal. Not on kAFS 6.1: its own write-back would store those dirty pages with the expired key.
. /xentest/lib.sh
. /xentest/afs/lib.sh

LIFETIME=${AFS_EXPIRY_LIFETIME:-180}
MARGIN=${AFS_EXPIRY_WRITE_MARGIN:-}
# LEAD: 5 s before the write gate closes (30 s): on a quiet host the guest's whole workload takes
# about 13 s, and from 45 s it was done before the gate closed, so nothing met the expiry.
LEAD=35 SUFFIX= SEED=51 EXTRA_MB=19
[ -n "$MARGIN" ] && { LEAD=25 SUFFIX=-fsync SEED=53 EXTRA_MB=21; }
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile renew/worker is not running"; }
# renew again with the short lifetime (afs-worker's has hours).
old=$(cat "$AFSFILE_PIDFILE")
kill "$old"
wait_until 30 sh -c "! kill -0 $old 2>/dev/null" || fail "the previous renew/worker did not stop"
from=$(($(wc -l < "$AFSFILE_LOG") + 1))
AFS_WORKER_DEBUG=${MARGIN:+AFSFILE_TOKEN_WRITE_MARGIN=$MARGIN} \
  AFS_RENEW_ARGS="--lifetime ${LIFETIME}s --margin 5s" afs_start_renew_worker || fail "renew got no token"
afs_renew_pid || fail "no renew loop"
renew_pid=$RENEW_PID
xt_step "renew (pid $renew_pid) with a ${LIFETIME} s ticket lifetime${MARGIN:+, the worker's write margin ${MARGIN} s}"

SEQ_MB=24 BUF_MB=4 RAND_MB=2 RAND_OPS=256
functional_io
IMAGE_MB=$((SEQ_MB + BUF_MB + RAND_MB + EXTRA_MB + AFS_MB_BIAS)) # a size of its own: its namei file is found by size
img=$AFS_DIR/xt-expiry$SUFFIX-$AFS_CLIENT.img
afs_image_create "$img" "$IMAGE_MB"
guest_start xt-expiry "vdev=xvda,access=rw,$AFS_SPEC,target=$img" $SEED "xt.mode=save xt.startmark=XTSTART xt.markwait=900"
guest_wait_line xt-expiry '^XT WAIT-START' "$GUEST_TIMEOUT"
kill -STOP "$renew_pid" || fail "cannot stop renew"
# A failing stage leaves renew running; either way: what the worker did after the renewal and
# what the kernel did with the stores.
expiry_exit() {
  kill -CONT "$renew_pid" 2>/dev/null
  tail -n +"$from" "$AFSFILE_LOG" | grep -E 'renewed|reopen|recover|fsync failed|giving up' | head -n 20 > /run/xentest/expiry-reopen
  show "worker: renewal, reopen, recovery" /run/xentest/expiry-reopen
  afs_trace_report
}
trap expiry_exit EXIT
afs_token_expiry || fail "no token expiry in renew.json"
exp=$AFS_TOKEN_EXP exp_s=$AFS_TOKEN_EXP_S
xt_step "renew stopped (SIGSTOP): the token is not renewed; it expires at $exp"
# Writes start LEAD s before the token lapses: the worker's token gate holds writes from 30 s
# (or MARGIN s) before (what is dirty is stored while the key is valid) and fsync from 10 s before.
afs_start_before_expiry "$exp_s" $LEAD "$img"
left=$((exp_s + 40 - $(date +%s)))
[ "$left" -gt 0 ] && sleep "$left"
afs_worker_errors "$from" > /run/xentest/expiry-held
show "worker while the token is expired" /run/xentest/expiry-held
guest_log xt-expiry | grep -q '^XT SAVE-READY' && xt_step "note: the guest finished its FLUSHes before the hold ended"
if ! grep -q 'EKEYEXPIRED' /run/xentest/expiry-held; then
  kill -CONT "$renew_pid"
  show renew.json /run/afsfile/status/renew.json
  tail -n +"$from" "$AFSFILE_LOG" | tail -n 60 | sed 's/^/  [afsfile] /'
  "$AFSFILE" status 2>&1 | sed 's/^/  [afsfile status] /'
  fail "the worker met no EKEYEXPIRED while the token was expired"
fi
t_cont=$(date +%s)
kill -CONT "$renew_pid"
xt_step "renew continued $((t_cont - exp_s)) s after expiry"
afs_guest_end xt-expiry "$img" $SEED
t_end=$(date +%s)
afs_worker_errors "$from" > /run/xentest/expiry-errors
show "worker: held/failed I/O" /run/xentest/expiry-errors
summary=$(afs_io_summary "$from" expiry)
xt_metric "expiry_until_verified_s=$((t_end - exp_s)) expiry_renew_after_s=$((t_cont - exp_s))" "$summary" \
  "expiry_verified_bytes=${AFS_VERIFIED_BYTES:-0}"
if [ -n "$MARGIN" ]; then
  # The point of this variant: the fsync gate refused an fsync over dirty data, and the kept
  # copy was written again after the renewal.
  echo "$summary" | grep -q 'expiry_gate_fsync=0 ' && fail "the fsync gate never acted (the guest's writes ended before the write margin?)"
  echo "$summary" | grep -q 'expiry_rewritten_bytes=0 ' && fail "nothing was written again from the kept copy"
fi
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died"; }
dmesg | grep -qE 'BUG:|Oops|general protection' && { dmesg | tail -n 40 | sed 's/^/  [dmesg] /'; fail "the dom0 kernel oopsed"; }
afs_image_remove "$img"
exit 0
