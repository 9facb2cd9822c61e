#!/bin/sh
# Case 5 (issue 16), the status quo measured: kernel xen-blkback over a loop device on an image in
# AFS (Xen's own `block` script), with the OpenAFS client, then afsfile on the same workload.
# The guest writes its pattern (AFS_LOOP_MB MiB sequential, O_DIRECT, plus the small buffered and
# random regions) and powers off, which detaches the disk. The loop device reads and writes the
# image from a kernel worker thread, outside any PAG, which the OpenAFS client serves with the
# token of its uid (0) or as anonymous: with the tokens in xl's own PAG only (the first run of
# this stage), every read of the guest failed (I/O error at sector 0) and the guest gave up. So
# the worker's tokens go to uid 0 outside any PAG for the blkback side, as a site running loop
# devices over AFS has to, and are dropped (unlog) after it. Reported for each: whether anything
# hangs (the guest's end, the backend's removal, the loop device's release, with their times),
# when the bytes reach the file server (the image's namei file on /vicepa, sampled every 2 s:
# the image is sparse, so its allocated size is what the server holds), the pattern verified
# there, and the ratios. Its own boot, outside CI: it may wedge dom0.
. /xentest/lib.sh
. /xentest/afs/lib.sh

[ "$AFS_CLIENT" = openafs ] || fail "case 5 runs with the OpenAFS client (after afs-openafs-client)"
# rxkad under TCG stores 0.3-1.5 MB/s (host load): the proposal's 500 MB would take 6-28 minutes per side.
SEQ_MB=$(cmdline_arg xentest.loop_mb); : "${SEQ_MB:=64}"
BUF_MB=4 RAND_MB=2 RAND_OPS=64 RAND_SECONDS=3
GUEST_TIMEOUT=$((SEQ_MB * 4 + 300))
DETACH_LIMIT=$((SEQ_MB * 3 + 120)) # how long a detach may take before it counts as hung
written_kib=$(((SEQ_MB + BUF_MB) * 1024))

# Samples the allocated KiB of namei file $1 every 2 s into $2 ("SECONDS KIB"), until $3 exists.
sample_server() {
  local t0=$(now_s)
  while [ ! -e "$3" ]; do
    echo "$(($(now_s) - t0)) $(afs_allocated_kib "$1")" >> "$2"
    sleep 2
  done
}
# The first sample time at which the server held at least $2 KiB, or "never".
first_at() { awk -v k="$2" '$2 >= k {print $1; f = 1; exit} END {if (!f) print "never"}' "$1"; }

# One side: SIDE DISK-SPEC IMAGE MIB SEED. Sets T_* (seconds from xl create) and SIDE_OK.
run_side() {
  local side=$1 spec=$2 img=$3 mb=$4 seed=$5 nf samples stop t0 domid be now bad sampler
  IMAGE_MB=$mb
  afs_image_create "$img" "$mb"
  nf=$(afs_namei_file $((mb * 1048576)))
  [ "$(echo "$nf" | grep -c .)" -eq 1 ] || fail "expected one namei file of $mb MiB, found: $nf"
  samples=/run/xentest/loop-$side.samples stop=/run/xentest/loop-$side.stop
  rm -f "$samples" "$stop"
  t0=$(now_s)
  sample_server "$nf" "$samples" "$stop" &
  sampler=$!
  guest_start "xt-$side" "$spec" "$seed"
  domid=$(guest_domid "xt-$side")
  be=/local/domain/0/backend/vbd/$domid/$XVDA
  T_WRITES= T_OFF= T_DETACHED= T_LOOPFREE= SIDE_OK=1
  while :; do
    now=$(($(now_s) - t0))
    [ -z "$T_WRITES" ] && guest_log "xt-$side" | grep -q '^XTIO RESULT' && T_WRITES=$now
    bad=
    [ "$SIDE_OK" = 1 ] && bad=$(guest_disk_error "xt-$side")
    [ -n "$bad" ] && { xt_step "$side: guest disk error: $bad"; SIDE_OK=0; timeout 30 xl destroy "xt-$side"; }
    if [ -z "$T_OFF" ] && domid_gone "$domid"; then T_OFF=$now; xt_step "$side: guest gone after ${now}s"; fi
    if [ -n "$T_OFF" ] && [ -z "$T_DETACHED" ] && xs_gone "$be"; then T_DETACHED=$now; xt_step "$side: backend removed after ${now}s"; fi
    if [ -n "$T_DETACHED" ] && { [ "$side" != blkback ] || ! /usr/sbin/losetup -a | grep -q "$img"; }; then
      T_LOOPFREE=$now; break
    fi
    [ -z "$T_OFF" ] && [ "$now" -ge "$GUEST_TIMEOUT" ] && { xt_step "$side: guest still running after ${now}s"; SIDE_OK=0; timeout 60 xl destroy "xt-$side"; }
    if [ -n "$T_OFF" ] && [ $((now - T_OFF)) -ge "$DETACH_LIMIT" ]; then
      xt_step "$side: HUNG: ${DETACH_LIMIT}s after the guest's end: backend $(xs_gone "$be" && echo removed || echo "still there (state $(xsr "$be/state"))"), loop: $(/usr/sbin/losetup -a | grep "$img" || echo none)"
      ps | grep -E 'losetup|block|xl ' | grep -v grep | sed 's/^/  [ps] /'
      dmesg | grep -iE 'blocked for more|hung|afs' | tail -n 10 | sed 's/^/  [dmesg] /'
      SIDE_OK=0; break
    fi
    sleep 1
  done
  stop_console "xt-$side"
  # The server's copy, once it stops growing or DETACH_LIMIT after the end (a guest that failed
  # wrote nothing to wait for).
  [ "$SIDE_OK" = 1 ] && wait_until "$DETACH_LIMIT" sh -c "[ \"\$(du -k '$nf' | cut -f1)\" -ge $written_kib ]"
  sleep 3; touch "$stop"; wait "$sampler"
  T_SERVER=$(first_at "$samples" "$written_kib")
  GUEST_RESULT=$(guest_log "xt-$side" | sed -n 's/^XTIO RESULT //p' | tail -n 1)
  GUEST_RAND_WRITTEN=$(echo "$GUEST_RESULT" | tr ' ' '\n' | sed -n 's/^rand_write_blocks=//p')
  SEQ_W=$(echo "$GUEST_RESULT" | tr ' ' '\n' | sed -n 's/^seq_write_MBps=//p')
  # The arrival of the bytes on the server: KiB allocated every 10 s.
  awk 'NR % 5 == 1 {printf "%ss:%sK ", $1, $2}' "$samples" > "/run/xentest/loop-$side.curve"
  xt_step "$side: server bytes over time: $(cat "/run/xentest/loop-$side.curve")"
  xt_metric "loop_${side}_seq_write_MBps=${SEQ_W:-none} loop_${side}_writes_done_s=${T_WRITES:-never}" \
    "loop_${side}_guest_off_s=${T_OFF:-never} loop_${side}_detached_s=${T_DETACHED:-never}" \
    "loop_${side}_released_s=${T_LOOPFREE:-never} loop_${side}_all_on_server_s=$T_SERVER" \
    "loop_${side}_server_kib=$(afs_allocated_kib "$nf")"
  [ "$SIDE_OK" = 1 ] && guest_log "xt-$side" | grep -q '^XT OK' || { SIDE_OK=0; xt_step "$side: the guest did not finish: $(guest_log "xt-$side" | grep -m1 '^XTIO FAIL\|^XT FAIL')"; return; }
  verify_image "$nf" "$seed"
}

# --- kernel blkback on a loop device, xl in a PAG with the worker's tokens ---
if afsfile_worker_alive; then
  old=$(cat "$AFSFILE_PIDFILE"); kill "$old"
  wait_until 30 sh -c "! kill -0 $old 2>/dev/null" || fail "renew/worker did not stop"
fi
modprobe xen-blkback || fail "cannot load xen-blkback"
# The worker's tokens for uid 0 outside any PAG (this shell is in none): xl, the block script's
# losetup and the loop device's kernel thread all get them.
KRB5CCNAME=FILE:/run/afs-loop.cc kinit -k -t "$AFS_WORKER_KEYTAB" "$AFS_WORKER_PRINC" &&
  KRB5CCNAME=FILE:/run/afs-loop.cc aklog -c "$AFS_CELL" || fail "no token for uid 0"
tokens | grep -q "$AFS_CELL" || { tokens; fail "aklog gave uid 0 no token"; }
trap 'unlog 2>/dev/null; KRB5CCNAME=FILE:/run/afs-loop.cc kdestroy 2>/dev/null' EXIT
img_b=$AFS_DIR/xt-loop-blkback-$AFS_CLIENT.img
run_side blkback "vdev=xvda,access=rw,target=$img_b" "$img_b" $((SEQ_MB + BUF_MB + RAND_MB + 23 + AFS_MB_BIAS)) 61
unlog || xt_step "unlog failed: uid 0 keeps the worker's token in this boot"
B_OK=$SIDE_OK B_SERVER=$T_SERVER B_SEQ=$SEQ_W B_DET=$T_DETACHED B_WR=$T_WRITES B_FREE=$T_LOOPFREE
[ "$B_OK" = 1 ] && afs_image_remove "$img_b"

# --- afsfile, the worker under renew ---
if [ -n "$B_FREE" ]; then
  rmmod xen-blkback || fail "cannot unload xen-blkback (afsfile serves backend/vbd on Xen 4.17)"
else
  fail "the loop device was not released: afsfile cannot take backend/vbd in this boot"
fi
afs_start_renew_worker || fail "renew got no token"
img_a=$AFS_DIR/xt-loop-afsfile-$AFS_CLIENT.img
run_side afsfile "vdev=xvda,access=rw,script=block-afsfile,target=$img_a" "$img_a" $((SEQ_MB + BUF_MB + RAND_MB + 24 + AFS_MB_BIAS)) 62
[ "$SIDE_OK" = 1 ] || fail "afsfile's side failed"
afs_image_remove "$img_a"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
xt_metric "loop_ratio_seq_write_afsfile_over_blkback=$(ratio "$SEQ_W" "$B_SEQ")" \
  "loop_ratio_all_on_server_blkback_over_afsfile=$(ratio "$B_SERVER" "$T_SERVER")" \
  "loop_ratio_detached_blkback_over_afsfile=$(ratio "$B_DET" "$T_DETACHED")"
# The status quo is measured, not judged: its failure is a result (afsfile's side must pass).
[ "$B_OK" = 1 ] || xt_step "RESULT: blkback on the loop device did not finish; afsfile did"
exit 0
