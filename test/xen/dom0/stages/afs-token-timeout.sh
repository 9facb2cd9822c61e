#!/bin/sh
# Case 2 past --hold-timeout (issue 16): the token lapses, renewals stay stopped longer than the
# hold, and the guest writes meanwhile. The worker (hold-timeout HOLD s) holds that write
# (EKEYEXPIRED from its token gate) and fails it after HOLD s: the guest gets an error for the
# held request only. What it wrote and flushed before stays on the server; `afsfile status` says
# why the request failed (the hold, and the token that lapsed); the device stays connected, and
# once renew goes on the same write succeeds and reaches the server.
#   renew: lifetime LIFETIME s, stopped (SIGSTOP) as soon as it has tokens;
#   guest (xt.mode=holdfail): its pattern, FLUSH, SAVE-READY; dom0 verifies it on the server;
#   LEAD s before expiry dom0 marks XTSTART: the guest's 1 MiB O_DIRECT write, refused by the
#   token gate (writes stop 30 s before expiry), fails HOLD s later, after the token lapsed;
#   dom0 checks `afsfile status` and the worker's log (every failed request was a held one), the
#   pattern on the server again, then lets renew go on (CONT_AFTER s after expiry) and marks
#   XTGO: the guest writes the block again, reads it back, verifies its pattern and ends; the
#   block must then be in the server's namei file.
# Ends with renew and the worker restarted with the defaults (later stages expect them).
. /xentest/lib.sh
. /xentest/afs/lib.sh

HOLD=${AFS_HOLD_TIMEOUT:-30}
LIFETIME=240 LEAD=15 CONT_AFTER=40 SEED=57
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile renew/worker is not running"; }
old=$(cat "$AFSFILE_PIDFILE")
kill "$old"
wait_until 30 sh -c "! kill -0 $old 2>/dev/null" || fail "the previous renew/worker did not stop"
from=$(($(wc -l < "$AFSFILE_LOG") + 1))
worker_args=$AFSFILE_WORKER_ARGS
AFSFILE_WORKER_ARGS="$worker_args --hold-timeout ${HOLD}s"
AFS_RENEW_ARGS="--lifetime ${LIFETIME}s --margin 5s"
afs_start_renew_worker || fail "renew got no token"
AFSFILE_WORKER_ARGS=$worker_args AFS_RENEW_ARGS=
afs_renew_pid || fail "no renew loop"
renew_pid=$RENEW_PID
kill -STOP "$renew_pid" || fail "cannot stop renew"
restore() {
  kill -CONT "$renew_pid" 2>/dev/null
  afs_trace_report
}
trap restore EXIT
afs_token_expiry || fail "no token expiry in renew.json"
exp=$AFS_TOKEN_EXP exp_s=$AFS_TOKEN_EXP_S
xt_step "worker with --hold-timeout ${HOLD}s; renew (pid $renew_pid) stopped;" \
  "the token expires at $exp ($((exp_s - $(date +%s))) s from now)"

SEQ_MB=8 BUF_MB=2 RAND_MB=1 RAND_OPS=256
functional_io
IMAGE_MB=$((SEQ_MB + BUF_MB + RAND_MB + 30 + AFS_MB_BIAS)) # a size of its own: its namei file is found by size
at_mb=$((SEQ_MB + BUF_MB + RAND_MB))
img=$AFS_DIR/xt-holdto-$AFS_CLIENT.img
# The held write fails, and reads while the token is lapsed may too: the guest's kernel logs them.
GUEST_DISK_EXPECTED='I/O error, dev xvda, sector [0-9]+ op 0x[01]:\((READ|WRITE)\)'
afs_image_create "$img" "$IMAGE_MB"
guest_start xt-holdto "vdev=xvda,access=rw,$AFS_SPEC,target=$img" $SEED "xt.mode=holdfail xt.markwait=600"
guest_wait_line xt-holdto '^XT SAVE-READY' "$GUEST_TIMEOUT"
[ "$(date +%s)" -lt $((exp_s - 30)) ] ||
  fail "the guest's pattern ended only $((exp_s - $(date +%s))) s before expiry (the write gate closes 30 s before)"
result=$(guest_log xt-holdto | sed -n 's/^XTIO RESULT //p' | tail -n 1)
[ -n "$result" ] && xt_metric "$result"
GUEST_RAND_WRITTEN=$(echo "$result" | tr ' ' '\n' | sed -n 's/^rand_write_blocks=//p')
nf=$(afs_namei_file $((IMAGE_MB * 1048576)))
[ "$(echo "$nf" | grep -c .)" -eq 1 ] || fail "expected one namei file of $IMAGE_MB MiB, found: $nf"

afs_start_before_expiry "$exp_s" $LEAD "$img"
guest_wait_line xt-holdto '^XT HELD-WRITE' $((HOLD + 90))
t_failed=$(date +%s)
line=$(guest_log xt-holdto | grep -m1 '^XT HELD-WRITE')
rc=$(echo "$line" | sed -n 's/.* rc=\([0-9]*\).*/\1/p') secs=$(echo "$line" | sed -n 's/.* seconds=\([0-9]*\).*/\1/p')
xt_step "guest: $line ($((t_failed - exp_s)) s after expiry)"
# (The device writes its status file within a second or so of the failure.)
why="write failed after [0-9]* s held (hold-timeout): EKEYEXPIRED (write not attempted: the AFS token for $AFS_CELL"
n=0
while :; do
  "$AFSFILE" status > /run/xentest/holdto-status 2>&1; st=$?
  grep -q "$why" /run/xentest/holdto-status && break
  n=$((n + 1)); [ $n -ge 10 ] && break
  sleep 1
done
show "afsfile status after the held write failed" /run/xentest/holdto-status
[ "$rc" != 0 ] || fail "the guest's write while the token was lapsed succeeded"
[ "$secs" -ge $((HOLD - 2)) ] && [ "$secs" -le $((HOLD + 30)) ] ||
  fail "the guest's write failed after $secs s, not after the hold-timeout ($HOLD s)"
[ "$st" = 0 ] || fail "afsfile status exited $st (a failed device?)"
grep -q "$why" /run/xentest/holdto-status ||
  fail "afsfile status does not say why the write failed (the hold and the token)"
# The device's line: "xt-holdto(DOMID)", or the domid alone when status found no name; Errors is column 8.
domid=$(guest_domid xt-holdto)
errors=$(awk -v d="$domid" '$1 == d || $1 == "xt-holdto(" d ")" {print $8}' /run/xentest/holdto-status)
[ "${errors:-0}" -ge 1 ] 2>/dev/null || fail "afsfile status counts no error for the device (Errors: ${errors:-none})"
# Every request the worker failed was one it had held until hold-timeout (by the engine's retries,
# or waiting for a recovery from a failed fsync that gave up).
tail -n +"$from" "$AFSFILE_LOG" | grep -E 'afsfile worker\[.*request id [0-9]+ op [0-9]+: ' > /run/xentest/holdto-failed
show "worker: failed requests" /run/xentest/holdto-failed
failed=$(grep -c . /run/xentest/holdto-failed)
held_re='held \(hold-timeout\)|refused: the kept writes could not be made durable'
unheld=$(grep -c -v -E "$held_re" /run/xentest/holdto-failed)
[ "$failed" -ge 1 ] || fail "the worker logged no failed request"
[ "$unheld" = 0 ] ||
  fail "$unheld request(s) failed without being held: $(grep -m1 -v -E "$held_re" /run/xentest/holdto-failed)"
# What the guest wrote and flushed before is on the server, the token still lapsed.
verify_image "$nf" $SEED

left=$((exp_s + CONT_AFTER - $(date +%s)))
[ "$left" -gt 0 ] && sleep "$left"
renewals_now() { sed -n 's/^  "renewals": \([0-9]*\),*$/\1/p' /run/afsfile/status/renew.json; }
renewals=$(renewals_now)
t_cont=$(date +%s)
kill -CONT "$renew_pid"
xt_step "renew continued $((t_cont - exp_s)) s after expiry"
n=0
until [ "$(renewals_now)" -gt "${renewals:-0}" ] 2>/dev/null; do
  n=$((n + 1)); [ $n -ge 120 ] && break
  sleep 0.5
done
[ "$(renewals_now)" -gt "${renewals:-0}" ] 2>/dev/null ||
  fail "renew did not renew within 60 s of SIGCONT"
xt_step "renewed $(($(date +%s) - t_cont)) s after SIGCONT"
afs_admin sh -c ". /xentest/lib.sh; image_mark $img XTGO" || fail "cannot mark $img"
guest_wait xt-holdto
sum=$(guest_log xt-holdto | sed -n 's/^XT AFTER-RENEWAL md5=\([0-9a-f]*\).*/\1/p')
[ -n "$sum" ] || fail "the guest printed no XT AFTER-RENEWAL"
server=$(dd if="$nf" bs=1M skip=$at_mb count=1 2>/dev/null | md5sum | cut -d' ' -f1)
[ "$server" = "$sum" ] ||
  fail "the block written after the renewal is not on the server (guest md5 $sum, namei file $server)"
xt_step "the block written after the renewal is in the namei file (md5 $sum); the pattern still verifies"
verify_image "$nf" $SEED
later=$(tail -n +"$from" "$AFSFILE_LOG" | grep -E 'afsfile worker\[.*request id [0-9]+ op [0-9]+: ' | grep -c .)
xt_metric "holdto_hold_timeout_s=$HOLD holdto_write_failed_after_s=$secs" \
  "holdto_failed_after_expiry_s=$((t_failed - exp_s))" \
  "holdto_failed_requests=$failed holdto_failed_after_renewal=$((later - failed)) holdto_status_errors=$errors" \
  "holdto_renew_after_s=$((t_cont - exp_s))" "$(afs_io_summary "$from" holdto)"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died"; }
if dmesg | grep -qE 'BUG:|Oops|general protection'; then
  dmesg | tail -n 40 | sed 's/^/  [dmesg] /'
  fail "the dom0 kernel oopsed"
fi
afs_image_remove "$img"
trap - EXIT
afs_trace_report
old=$(cat "$AFSFILE_PIDFILE")
kill "$old"
wait_until 30 sh -c "! kill -0 $old 2>/dev/null" || fail "the stage's renew/worker did not stop"
afs_start_renew_worker || fail "renew with the defaults got no token"
exit 0
