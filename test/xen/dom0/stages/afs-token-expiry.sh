#!/bin/sh
# Case 2 (issue 16): the worker's token expires while the guest writes and flushes. renew runs
# with a short ticket lifetime and is stopped (SIGSTOP) right after it got tokens, so nothing
# renews them; the guest starts its workload (pattern, FLUSHes) 45 s before they lapse. The
# worker must not store with the expired key (kAFS 6.1 oopses in afs_store_data): its token
# gate answers EKEYEXPIRED to writes from 30 s and to fsync from 10 s before expiry, the engine
# holds them and keeps the data. 40 s after expiry
# renew goes on (SIGCONT): new tokens, the image reopened, the kept writes written again, the
# FLUSH answered. The guest must see no error; its pattern must then be in the namei file on
# the server; dom0 must still be up. Reports the errors the worker met, the hold, the bytes.
. /xentest/lib.sh
. /xentest/afs/lib.sh

LIFETIME=${AFS_EXPIRY_LIFETIME:-180}
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile renew/worker is not running"; }
# renew again with the short lifetime (afs-worker's has hours).
old=$(cat "$AFSFILE_PIDFILE")
kill "$old"
wait_until 30 sh -c "! kill -0 $old 2>/dev/null" || fail "the previous renew/worker did not stop"
from=$(($(wc -l < "$AFSFILE_LOG") + 1))
AFS_RENEW_ARGS="--lifetime ${LIFETIME}s --margin 5s" afs_start_renew_worker || fail "renew got no token"
renew_pid=$(cat "$AFSFILE_PIDFILE")
xt_step "renew (pid $renew_pid) with a ${LIFETIME} s ticket lifetime"

SEQ_MB=24 BUF_MB=4 RAND_MB=2 RAND_OPS=256
functional_io
IMAGE_MB=$((SEQ_MB + BUF_MB + RAND_MB + 19 + AFS_MB_BIAS)) # a size of its own: its namei file is found by size
img=$AFS_DIR/xt-expiry-$AFS_CLIENT.img
afs_admin dd if=/dev/zero of="$img" bs=1048576 seek=$((IMAGE_MB - 1)) count=1 2>/dev/null || fail "cannot create $img"
guest_start xt-expiry "vdev=xvda,access=rw,script=block-afsfile,target=$img" 51 "xt.mode=save xt.startmark=XTSTART xt.markwait=900"
guest_wait_line xt-expiry '^XT WAIT-START' "$GUEST_TIMEOUT"
kill -STOP "$renew_pid" || fail "cannot stop renew"
exp=$(sed -n 's/.*"ticketExpires": "\([^"]*\)".*/\1/p' /run/afsfile/status/renew.json)
xt_step "renew stopped (SIGSTOP): the token is not renewed; it expires at $exp"
exp_s=$(date -d "$(echo "$exp" | sed 's/T/ /; s/\..*//; s/Z$//')" +%s 2>/dev/null)
[ -n "$exp_s" ] || fail "cannot read the ticket expiry $exp"
# Writes start 45 s before the token lapses: the worker's token gate holds writes from 30 s
# before (what is dirty is stored while the key is valid) and fsync from 10 s before.
wait_s=$((exp_s - $(date +%s) - 45))
[ "$wait_s" -gt 0 ] && sleep "$wait_s"
afs_admin sh -c ". /xentest/lib.sh; image_mark $img XTSTART" || fail "cannot mark $img"
t_start=$(date +%s)
xt_step "guest told to write ($((exp_s - t_start)) s before expiry)"
left=$((exp_s + 40 - $(date +%s)))
[ "$left" -gt 0 ] && sleep "$left"
afs_worker_errors "$from" > /run/xentest/expiry-held
show "worker while the token is expired" /run/xentest/expiry-held
guest_log xt-expiry | grep -q '^XT SAVE-READY' && xt_step "note: the guest finished its FLUSHes before the hold ended"
grep -q 'EKEYEXPIRED' /run/xentest/expiry-held || fail "the worker met no EKEYEXPIRED while the token was expired"
t_cont=$(date +%s)
kill -CONT "$renew_pid"
xt_step "renew continued $((t_cont - exp_s)) s after expiry"
afs_guest_end xt-expiry "$img" 51
t_end=$(date +%s)
afs_worker_errors "$from" > /run/xentest/expiry-errors
show "worker: held/failed I/O" /run/xentest/expiry-errors
xt_metric "expiry_hold_s=$((t_end - exp_s)) expiry_renew_after_s=$((t_cont - exp_s))" \
  "expiry_gate_refusals=$(grep -c 'EKEYEXPIRED' /run/xentest/expiry-errors)" \
  "expiry_rewritten_bytes=$(sed -n 's/.*(\([0-9]*\) bytes) since the last good fsync.*/\1/p' /run/xentest/expiry-errors | awk '{s += $1} END {print s + 0}')" \
  "expiry_verified_bytes=$(((SEQ_MB + BUF_MB) * 1048576))"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died"; }
dmesg | grep -qE 'BUG:|Oops|general protection' && { dmesg | tail -n 40 | sed 's/^/  [dmesg] /'; fail "the dom0 kernel oopsed"; }
exit 0
