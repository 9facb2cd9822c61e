#!/bin/sh
# Issue 21 on real Xen: what an idle attached disk costs dom0, with device hosts
# (isolation=identity, the default: one process serves every disk) and with a process per
# disk (isolation=disk), side by side in one boot. Small guests boot without a disk and
# wait (the guest's init polls for an xvda that never comes); dom0 hot-attaches D disks to
# each (xl block-attach, each connected by blkfront), then measures every afsfile process
# (the worker, its spare, its device processes): PSS and USS (smaps_rollup), threads,
# kernel memory (Slab + KernelStack + PageTables of /proc/meminfo), and over an idle
# window their CPU time and context switches (wakeups). Each mode is measured at 0 disks,
# at SMALL disks (4), and (identity only: a process per disk is bounded by dom0's memory
# and, under TCG, by a process start of 5-30 s per attach) at all G x D disks.
# Then, with every idle disk still attached to the host, BUSY more guests get a disk each
# (xvda, which their init waits for) and run `xtio perf` on it (O_DIRECT: 1 MiB sequential
# write and read, 4 KiB random read and write at depth 1 and 16, BUSY_S seconds each): the
# same totals are taken while they run (mode identity-busy), and their throughput reported.
# XENTEST METRIC lines: `scale mode=M disks=N procs= threads= pss_kb= uss_kb= kernel_kb=
# cpu_pct= wakeups_s= dom0_cpu_pct=` (dom0_cpu_pct: all of dom0's CPU time, in % of one CPU),
# `scale-busy guest=B NAME ops= seconds= iops= MBps=`, then the slopes per disk.
. /xentest/lib.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker is not running"; }
GUESTS=$(cmdline_arg xentest.scale_guests); : "${GUESTS:=6}"
DISKS=$(cmdline_arg xentest.scale_disks);   : "${DISKS:=4}"   # per guest, xvdb.. (at most 15)
SMALL=$(cmdline_arg xentest.scale_small);   : "${SMALL:=4}"   # disks of the isolation=disk side
IDLE_S=$(cmdline_arg xentest.scale_idle);   : "${IDLE_S:=20}"
BUSY=$(cmdline_arg xentest.scale_busy);     : "${BUSY:=2}"    # guests doing I/O, a disk each
BUSY_S=$(cmdline_arg xentest.scale_busy_s); : "${BUSY_S:=15}" # seconds of each xtio perf workload
GUEST_MEMORY=${SCALE_GUEST_MEM:-96}
LETTERS=bcdefghijklmnop
. /xentest/scale.sh

# attach MODE G K: disk K (1-based) of guest G, connected; with a process per disk the
# spare must be ready first (a process start under TCG can exceed libxl's hotplug wait).
attach() {
  local name=xt-scale-$2 letter devid out
  letter=$(echo "$LETTERS" | cut -c"$3")
  devid=$((51712 + 16 * $3))
  [ "$1" = disk ] && { wait_until 120 spare_ready || fail "no spare ready for disk $2/$3"; }
  out=/run/xentest/$name.attach
  timeout 90 xl block-attach "$name" "vdev=xvd$letter,access=rw,$AFS_SPEC,target=$IMAGES/scale-$2-$3.img" \
    > "$out" 2>&1 || { show "xl block-attach" "$out"; guest_fail "$name" "" "xl block-attach $name xvd$letter failed"; }
  guest_connect "$name" "$devid"
}

# The attach order, "G K" a line: disk 1 of each guest, then disk 2 of each...
order() {
  local g k
  for k in $(seq 1 "$DISKS"); do for g in $(seq 1 "$GUESTS"); do echo "$g $k"; done; done
}

# Runs "G K" lines (stdin) through CMD G K, one guest's line at a time: GUESTS consecutive
# lines of the order are GUESTS different guests, so each batch may run at once (xl
# block-detach of different domains goes on in parallel). CMD failing fails the stage (its
# reason is written).
batches() { # batches PARALLEL CMD...
  local par=$1 g k pids= p bad=0 i=0
  shift
  while read -r g k; do
    "$@" "$g" "$k" < /dev/null &
    pids="$pids $!"
    i=$((i + 1))
    if [ $i -ge "$par" ]; then
      for p in $pids; do wait "$p" || bad=1; done
      pids= i=0
      [ $bad = 0 ] || exit 1
    fi
  done
  for p in $pids; do wait "$p" || bad=1; done
  [ $bad = 0 ] || exit 1
}

detach_one() { # detach_one G K
  local letter
  letter=$(echo "$LETTERS" | cut -c"$2")
  timeout 90 xl block-detach "xt-scale-$1" "xvd$letter" > /dev/null 2>&1 ||
    fail "xl block-detach xt-scale-$1 xvd$letter failed"
}

detach_all() { # detach_all COUNT: the first COUNT disks of the order
  order | head -n "$1" > /run/xentest/scale.detach
  batches 2 detach_one < /run/xentest/scale.detach || exit 1
  wait_until 60 no_devices || { ls /run/afsfile/status; fail "device status files left 60 s after the detaches"; }
}

# run_mode MODE COUNTS...: the worker with isolation MODE, measured at 0 disks and after
# attaching up to each COUNT disks of the order.
run_mode() {
  local mode=$1 n=0 target
  shift
  restart_worker $AFSFILE_WORKER_ARGS --isolation="$mode"
  measure "$mode" 0
  for target in "$@"; do
    order | sed -n "$((n + 1)),${target}p" > /run/xentest/scale.next
    # One attach at a time: each runs the hotplug script (the afsfile executable), and under
    # TCG four at once took longer than libxl lets a script run (40 s); with a process per
    # disk each waits for its spare too.
    batches 1 attach "$mode" < /run/xentest/scale.next || exit 1
    n=$target
    xt_step "isolation=$mode: $n disks attached and connected; $(afs_pids | wc -l) afsfile processes"
    measure "$mode" "$n"
  done
  [ "$mode" = identity ] && [ "$BUSY" -gt 0 ] && busy_phase "$n"
  detach_all "$n"
}

# busy_phase IDLE: the busy guests get their disk (in the same host as the IDLE idle ones),
# are measured while `xtio perf` runs, and report its figures; they power off when done.
busy_phase() {
  local b name out
  for b in $(seq 1 "$BUSY"); do
    name=xt-scale-busy-$b out=/run/xentest/$name.attach
    timeout 90 xl block-attach "$name" "vdev=xvda,access=rw,$AFS_SPEC,target=$IMAGES/scale-busy-$b.img" \
      > "$out" 2>&1 || { show "xl block-attach" "$out"; guest_fail "$name" "" "xl block-attach $name xvda failed"; }
    guest_connect "$name" "$XVDA"
  done
  for b in $(seq 1 "$BUSY"); do guest_wait_line "xt-scale-busy-$b" '^XTIO PERF BEGIN' 120; done
  xt_step "$BUSY busy guests running xtio perf beside $1 idle disks; $(afs_pids | wc -l) afsfile processes"
  measure identity-busy "$(($1 + BUSY))"
  for b in $(seq 1 "$BUSY"); do
    name=xt-scale-busy-$b
    guest_wait_line "$name" '^XT (OK|FAIL)' $((BUSY_S * 12 + 180))
    guest_log "$name" | grep -q '^XT OK' || guest_fail "$name" "" "xtio perf on the busy guest failed"
    guest_log "$name" | tr -d '\r' | sed -n 's/^XTIO PERF \([^B]\)/\1/p' |
      while read -r line; do xt_metric "scale-busy guest=$b $line"; done
  done
  # Powered off: their disks went with them.
  for b in $(seq 1 "$BUSY"); do wait_until 60 sh -c "! xl domid xt-scale-busy-$b > /dev/null 2>&1"; done
}

[ "$DISKS" -le 15 ] || fail "at most 15 disks per guest (xvdb..xvdp)"
rm -f /run/xentest/scale.tsv
for g in $(seq 1 "$GUESTS"); do
  for k in $(seq 1 "$DISKS"); do
    dd if=/dev/zero of="$IMAGES/scale-$g-$k.img" bs=1M count=1 2>/dev/null || fail "cannot create the images"
  done
done
for b in $(seq 1 "$BUSY"); do
  truncate -s 64M "$IMAGES/scale-busy-$b.img" || fail "cannot create the busy guests' images"
done
GUEST_CONNECT=no
for g in $(seq 1 "$GUESTS"); do
  # No disk at boot: the guest polls for xvda (never attached) until dom0 destroys it.
  guest_start "xt-scale-$g" "" "$g" "xt.wait=1500"
done
for b in $(seq 1 "$BUSY"); do
  guest_start "xt-scale-busy-$b" "" "$((100 + b))" \
    "xt.wait=1500 xt.mode=perf xt.rounds=1 xt.perf_seconds=$BUSY_S xt.perf_qd=16"
done
for g in $(seq 1 "$GUESTS"); do guest_wait_line "xt-scale-$g" '^XT BOOT' "$BOOT_TIMEOUT"; done
for b in $(seq 1 "$BUSY"); do guest_wait_line "xt-scale-busy-$b" '^XT BOOT' "$BOOT_TIMEOUT"; done
xt_step "$GUESTS + $BUSY guests of ${GUEST_MEMORY} MiB up, waiting"

ALL=$((GUESTS * DISKS))
[ "$SMALL" -gt "$ALL" ] && SMALL=$ALL
run_mode identity "$SMALL" "$ALL"
run_mode disk "$SMALL"

for g in $(seq 1 "$GUESTS"); do timeout 30 xl destroy "xt-scale-$g" 2>/dev/null; done
for b in $(seq 1 "$BUSY"); do timeout 30 xl destroy "xt-scale-busy-$b" 2>/dev/null; done
stop_console
rm -f "$IMAGES"/scale-*.img
# The worker as afsfile-setup started it, for the stages after this one.
restart_worker $AFSFILE_WORKER_ARGS

echo "  [scale] mode disks pss_kb uss_kb kernel_kb cpu_pct wakeups_s procs threads dom0_cpu_pct"
sed 's/^/  [scale] /' /run/xentest/scale.tsv
# Slopes per disk from 0 to the largest count of each mode (MiB, % CPU, wakeups/s).
for mode in identity disk; do
  awk -v m="$mode" '$1 == m { if ($2 == 0) { p0 = $3; u0 = $4; k0 = $5; c0 = $6; w0 = $7 } else if ($2 >= n) {
      n = $2; p = $3; u = $4; k = $5; c = $6; w = $7 } }
    END { if (n > 0) printf "XENTEST METRIC '"$XT_STAGE"' scale-slope mode=%s disks=%d pss_mib_per_disk=%.3f " \
      "uss_mib_per_disk=%.3f kernel_mib_per_disk=%.3f cpu_pct_per_disk=%.4f wakeups_s_per_disk=%.2f\n",
      m, n, (p - p0) / n / 1024, (u - u0) / n / 1024, (k - k0) / n / 1024, (c - c0) / n, (w - w0) / n }' \
    /run/xentest/scale.tsv
done
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died during the stage"; }
exit 0
