#!/bin/sh
# Issue 17: one identity's token expires; only its guest is held, the other tenant's goes on.
# Tenant b's tickets last IDENT_B_LIFETIME s (afs-ident-setup); right after a renewal its
# identity's process is stopped (SIGSTOP: its renewal loop with it; its device processes run
# on). Both tenants' guests then write from 25 s before b's token lapses: b's writes are held by
# its device's token gate (EKEYEXPIRED, nothing stored with the expired key), while a's guest
# writes, flushes and has its pattern on the server before b's identity goes on. Then b's
# identity is continued (SIGCONT): new token, image reopened, held writes done, b's pattern on
# the server, no guest error.
. /xentest/lib.sh
. /xentest/afs/lib.sh
. /xentest/afs/ident.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile renew/worker is not running"; }
fb=$(ident_status tenant-b)
[ -f "$fb" ] || fail "no identity tenant-b (afs-ident-setup)"
SEQ_MB=4 BUF_MB=2 RAND_MB=1 RAND_OPS=128
functional_io
from=$(($(wc -l < "$AFSFILE_LOG") + 1))
img_a=$(ident_dir a)/xt-ta-exp.img img_b=$(ident_dir b)/xt-tb-exp.img
mb_a=$((SEQ_MB + BUF_MB + RAND_MB + 8)) mb_b=$((SEQ_MB + BUF_MB + RAND_MB + 10))
afs_admin rm -f "$img_a" "$img_b" # fresh (a rerun): xtio checks that unwritten blocks are zero
for g in a b; do
  eval "img=\$img_$g; mb=\$mb_$g"
  afs_admin dd if=/dev/zero of="$img" bs=1048576 seek=$((mb - 1)) count=1 > /run/xentest/ident-dd.out 2>&1 || { show dd /run/xentest/ident-dd.out; fail "cannot create $img"; }
done
# Both guests boot and wait for the start mark.
guest_start xt-ta-e$IDENT_G "vdev=xvda,access=rw,script=block-afsfile,target=$img_a" 71 "xt.mode=save xt.startmark=XTSTART xt.markwait=900"
guest_start xt-tb-e$IDENT_G "vdev=xvda,access=rw,script=block-afsfile,target=$img_b" 72 "xt.mode=save xt.startmark=XTSTART xt.markwait=900"
guest_wait_line xt-ta-e$IDENT_G '^XT WAIT-START' "$GUEST_TIMEOUT"
guest_wait_line xt-tb-e$IDENT_G '^XT WAIT-START' "$GUEST_TIMEOUT"

# Stop b's identity right after a renewal: its token then lives IDENT_B_LIFETIME s at most.
opener=$(json_field "$fb" pid)
[ -n "$opener" ] && kill -0 "$opener" || fail "no process of identity tenant-b"
last=$(json_field "$fb" lastSuccess)
kill -ALRM "$opener" # a renewal now (as a device's token error would ask)
ident_wait_success tenant-b 60 "$last" || fail "identity tenant-b did not renew when asked"
kill -STOP "$opener" || fail "cannot stop identity tenant-b's process"
trap 'kill -CONT "$opener" 2>/dev/null' EXIT # a failing stage leaves it running
exp=$(json_field "$fb" ticketExpires)
exp_s=$(date -d "$(echo "$exp" | sed 's/T/ /; s/\..*//; s/Z$//')" +%s 2>/dev/null)
[ -n "$exp_s" ] || fail "cannot read tenant-b's ticket expiry $exp"
xt_step "identity tenant-b's process $opener stopped (SIGSTOP) after a renewal; its token expires at $exp ($((exp_s - $(date +%s))) s)"
# b writes from about 30 s before its token lapses (its token gate holds writes from then on);
# a starts only once b's token has expired, so all of a's I/O happens while b is held.
wait_s=$((exp_s - $(date +%s) - 32))
[ "$wait_s" -gt 0 ] && sleep "$wait_s"
afs_admin sh -c ". /xentest/lib.sh; image_mark $img_b XTSTART" || fail "cannot mark $img_b"
t_b=$(date +%s)
xt_step "tenant b's guest told to write, $((exp_s - t_b)) s before its token lapses"
wait_s=$((exp_s - $(date +%s) + 3))
[ "$wait_s" -gt 0 ] && sleep "$wait_s"
afs_admin sh -c ". /xentest/lib.sh; image_mark $img_a XTSTART" || fail "cannot mark $img_a"
t_start=$(date +%s)
xt_step "tenant a's guest told to write, $((t_start - exp_s)) s after tenant b's token lapsed"

# a goes on: its workload and FLUSH end, its pattern is on the server, while b is still stopped.
deadline=$((exp_s + 150))
until guest_log xt-ta-e$IDENT_G | grep -q '^XT SAVE-READY'; do
  bad=$(guest_disk_error xt-ta-e$IDENT_G); [ -n "$bad" ] && fail "tenant a's guest: $bad"
  [ "$(date +%s)" -ge "$deadline" ] && fail "tenant a's guest did not finish while tenant-b's token was expired"
  sleep 1
done
t_a=$(date +%s)
guest_log xt-tb-e$IDENT_G | grep -q '^XT SAVE-READY' && fail "tenant b's guest finished its FLUSHes with its token expired"
xt_step "tenant a's guest finished its writes and FLUSH $((t_a - t_start)) s after its start ($((t_a - exp_s)) s after b's token lapsed; b still held)"
IMAGE_MB=$mb_a; afs_guest_end xt-ta-e$IDENT_G "$img_a" 71
t_a_end=$(date +%s)
[ "$(date +%s)" -lt $((exp_s + 5)) ] && sleep $((exp_s + 5 - $(date +%s)))
tail -n +"$from" "$AFSFILE_LOG" > /run/xentest/ident-log
held_b=$(grep -E 'write held|fsync held' /run/xentest/ident-log | grep -c "$img_b")
dom_a=$(guest_domid xt-ta-e$IDENT_G)
grep -E 'held|fsync failed|retry|transient' /run/xentest/ident-log |
  grep -E "$img_a|vbd/$dom_a/|device $dom_a/" | head -n 5 > /run/xentest/ident-held-a
grep -E 'write held|fsync held' /run/xentest/ident-log | head -n 3 | sed 's/^/  [afsfile] /'
if [ "$held_b" -eq 0 ]; then
  kill -CONT "$opener"; show identity-tenant-b.json "$fb"
  tail -n 60 /run/xentest/ident-log | sed 's/^/  [afsfile] /'
  fail "tenant b's device held no I/O while its token was expired"
fi
[ -s /run/xentest/ident-held-a ] && { show "tenant a" /run/xentest/ident-held-a; fail "tenant a's device held or failed I/O"; }
xt_step "tenant b's device held its I/O ($held_b held requests logged); tenant a's none"
t_cont=$(date +%s)
kill -CONT "$opener"
xt_step "identity tenant-b continued $((t_cont - exp_s)) s after its token expired"
IMAGE_MB=$mb_b; afs_guest_end xt-tb-e$IDENT_G "$img_b" 72
t_end=$(date +%s)
afs_worker_errors "$from" > /run/xentest/ident-errors
show "worker: held/failed I/O" /run/xentest/ident-errors
xt_metric "ident_b_hold_s=$((t_end - exp_s)) ident_b_cont_after_s=$((t_cont - exp_s))" \
  "ident_a_done_after_start_s=$((t_a - t_start)) ident_a_verified_after_start_s=$((t_a_end - t_start))" \
  "ident_b_held_requests=$held_b"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died"; }
dmesg | grep -qE 'BUG:|Oops|general protection' && { dmesg | tail -n 40 | sed 's/^/  [dmesg] /'; fail "the dom0 kernel oopsed"; }
afs_admin rm -f "$img_a" "$img_b"
exit 0
