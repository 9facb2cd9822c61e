#!/bin/sh
# The performance A/B (npm run test:xen:perf): kernel blkback (loop device, script
# block) and afsfile (script block-afsfile) in the same boot, for the same guest,
# alternating: one guest boots without a disk and runs `xtio perf` (O_DIRECT 1 MiB
# sequential write and read, 4 KiB random read and write at queue depth 1 and 16)
# on xvdb each time dom0 attaches it, PERF_ROUNDS rounds of (blkback, afsfile),
# the order swapped every round. On Xen 4.17 (the vbd route) both backends claim
# backend/vbd, so xen-blkback is loaded only around its own attach (the afsfile
# worker leaves script=block disks alone). From Xen 4.19 on (the vbd3 route,
# backendtype=tap) blkback stays loaded all through and afsfile serves
# backend/vbd3 beside it: the layout an administrator runs. Then the same with a
# guest whose blkfront takes max_indirect_segments=256 (1 MiB requests whole;
# blkfront's default is 32).
#
# dom0 CPU per request: Xen's per-domain cpu_time of dom0 (xl list, 0.1 s), taken
# when each workload's BEGIN and result lines appear on the guest's console
# (polled every 0.2 s; xtio leaves an idle second between workloads), over the
# workload's requests. The result: per workload, the median of the per-round
# ratios afsfile/blkback with the quartiles, and each side's median dom0 CPU per
# request, as XENTEST METRIC lines; both images verified by dom0 afterwards.
. /xentest/lib.sh

ROUNDS=$(cmdline_arg xentest.perf_rounds);        : "${ROUNDS:=5}"
SECONDS_EACH=$(cmdline_arg xentest.perf_seconds); : "${SECONDS_EACH:=4}"
VARIANT_ROUNDS=$(cmdline_arg xentest.perf_variant_rounds); : "${VARIANT_ROUNDS:=$ROUNDS}"
# The sides (run.mjs --perf-sides): blkback, afsfile, and afsfile with another image I/O path
# (the worker is restarted with AFSFILE_IO set: afsfile-pool = threadpool, afsfile-uring-reads,
# afsfile-inline = inline-writes; afsfile and afsfile-ring are the default, uring), or with
# AFSFILE_KEEP=copy (afsfile-copy: write data copied into the kept-data arena at completion),
# AFSFILE_PERSISTENT=1 (afsfile-pgnt: persistent grants offered, kept mapped, memcpy'd).
SIDES=$(cmdline_arg xentest.perf_sides | tr ',' ' '); : "${SIDES:=blkback afsfile}"
NSIDES=$(echo $SIDES | wc -w)
# xentest.perf_profile=1 (run.mjs --perf-profile): the afsfile sides' worker profiles itself
# and logs the timing split; it is restarted for the first afsfile side to get that.
PROFILE_ENV=
WORKER_MODE=afsfile             # the side the running worker serves as
if [ "$(cmdline_arg xentest.perf_profile)" = 1 ]; then
  PROFILE_ENV="AFSFILE_CPU_PROFILE=/tmp DEBUG=afsfile:worker,afsfile:device,afsfile:timing"
  WORKER_MODE=none
fi
XVDB=51728
SEED=21
LOG=/run/xentest/perf.log       # "SIDE ROUND CPU0 XTIO PERF ..." lines
RESULTS=/run/xentest/perf.results

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker is not running"; }
if [ "$AFS_ROUTE" = vbd3 ]; then
  lsmod | grep -q '^xen_blkback' || fail "xen-blkback is not loaded (the vbd3 route runs beside it)"
else
  lsmod | grep -q '^xen_blkback' && fail "xen-blkback is loaded (afsfile-setup unloads it)"
fi
xt_step "route $AFS_ROUTE: afsfile serves backend/$AFS_KIND, blkback backend/vbd"

img_base=$IMAGES/perf-base.img
img_afs=$IMAGES/perf-afs.img
for img in "$img_base" "$img_afs"; do
  make_image "$img"
  xtio fill "$img" --seed $SEED $(xtio_layout) > /dev/null || fail "xtio fill $img failed"
done
: > "$RESULTS"

cpu0() { xl list 0 | awk 'NR == 2 { print $6 }'; }

# perf_follow NAME TAGFILE: appends "TAG CPU0 LINE" to $LOG for every XTIO PERF and XT
# PERF-DONE line of guest NAME's console, TAG being the current content of TAGFILE (side, round).
perf_follow() {
  local con seen=0 n
  con=$(guest_console "$1")
  while :; do
    n=$(wc -l < "$con")
    if [ "$n" -gt "$seen" ]; then
      tr -d '\r' < "$con" | sed -n "$((seen + 1)),${n}p" | grep -E '^XTIO PERF |^XT PERF-DONE ' |
        while read -r line; do echo "$(cat "$2") $(cpu0) $line"; done >> "$LOG"
      seen=$n
    fi
    sleep 0.2
  done
}

# worker_for SIDE: restart the worker with SIDE's AFSFILE_IO unless it already runs that way.
# The worker's own cpu-profile and timing lines (AFSFILE_WORKER_ENV) go to its log as before.
worker_for() {
  local io old
  [ "$1" = "$WORKER_MODE" ] && return 0
  case $1 in
    afsfile-pool) io=threadpool ;; afsfile-uring-reads) io=uring-reads ;; afsfile-inline) io=inline-writes ;;
    *) io=uring ;;
  esac
  keep=; [ "$1" = afsfile-copy ] && keep=copy
  pgnt=; [ "$1" = afsfile-pgnt ] && pgnt=1
  old=$(cat "$AFSFILE_PIDFILE")
  kill -TERM "$old"
  wait_until 30 sh -c "! kill -0 $old 2>/dev/null" || fail "the worker (pid $old) did not stop for the $1 side"
  env DEBUG=afsfile:worker,afsfile:device $AFSFILE_WORKER_ENV $PROFILE_ENV AFSFILE_IO=$io AFSFILE_KEEP=$keep AFSFILE_PERSISTENT=$pgnt setsid "$AFSFILE" $AFSFILE_WORKER_ARGS >> "$AFSFILE_LOG" 2>&1 < /dev/null &
  echo $! > "$AFSFILE_PIDFILE"
  WORKER_MODE=$1
  sleep 2
  afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "the worker did not start for the $1 side"; }
  xt_step "worker restarted with AFSFILE_IO=$io AFSFILE_KEEP=$keep AFSFILE_PERSISTENT=$pgnt for the $1 side"
}

# kind_of SIDE: the backend directory SIDE's xvdb lives under.
kind_of() { if [ "$1" = blkback ]; then echo vbd; else echo "$AFS_KIND"; fi; }

# attach SIDE GUEST: attach xvdb from SIDE's backend and wait until it is connected.
attach() {
  local spec out=/run/xentest/perf.attach
  [ "$1" = blkback ] || worker_for "$1"
  if [ "$1" = blkback ]; then
    [ "$AFS_ROUTE" = vbd3 ] || modprobe xen-blkback || fail "modprobe xen-blkback"
    spec="vdev=xvdb,access=rw,target=$img_base"
  else
    spec="vdev=xvdb,access=rw,$AFS_SPEC,target=$img_afs"
  fi
  timeout 120 xl block-attach "$2" "$spec" > "$out" 2>&1 || {
    show "xl block-attach" "$out"
    guest_fail "$2" "$(backend_of "$2" $XVDB "$(kind_of "$1")")" "xl block-attach ($1) failed: $(create_error "$out")"
  }
  guest_connect "$2" $XVDB
}

# detach SIDE GUEST: detach xvdb, wait for its backend to go; unload blkback after its turn.
detach() {
  local be out=/run/xentest/perf.detach
  be=$(backend_of "$2" $XVDB "$(kind_of "$1")")
  timeout 120 xl block-detach "$2" xvdb > "$out" 2>&1 || { show "xl block-detach" "$out"; guest_fail "$2" "$be" "xl block-detach ($1) failed"; }
  wait_until 60 xs_gone "$be" || guest_fail "$2" "$be" "backend $be still there 60s after xl block-detach"
  if [ "$1" = blkback ]; then
    wait_until 30 sh -c "! /usr/sbin/losetup -a | grep -q '$img_base'" || fail "a loop device still holds $img_base"
    [ "$AFS_ROUTE" = vbd3 ] || rmmod xen-blkback || fail "cannot unload xen-blkback after its turn"
  fi
}

# run_variant NAME ROUNDS XT-ARGS: one guest, ROUNDS rounds of both sides.
run_variant() {
  local name=$1 rounds=$2 extra=$3 tag=/run/xentest/perf.tag k=0 r side order follower i
  [ "$rounds" -gt 0 ] || return 0
  echo "none 0" > "$tag"
  : > "$LOG"
  guest_start "$name" "" $SEED "xt.mode=perf xt.dev=xvdb xt.wait=$BOOT_TIMEOUT xt.hold=600 xt.rounds=$((NSIDES * rounds)) xt.perf_seconds=$SECONDS_EACH xt.perf_qd=16 $extra"
  guest_wait_line "$name" '^XT BOOT' "$BOOT_TIMEOUT"
  perf_follow "$name" "$tag" &
  follower=$!
  r=1
  while [ $r -le "$rounds" ]; do
    # The sides rotated by one per round (with two: swapped every round).
    order=$SIDES
    i=1
    while [ $i -lt $r ]; do order="$(echo $order | cut -d' ' -f2-) $(echo $order | cut -d' ' -f1)"; [ $NSIDES -gt 1 ] || break; i=$((i + 1)); done
    for side in $order; do
      k=$((k + 1))
      echo "$side $r" > "$tag"
      xt_step "$name round $r/$rounds: $side (attach $k)"
      attach "$side" "$name"
      guest_wait_line "$name" "^XT PERF-DONE $k\$" $((SECONDS_EACH * 12 + 300))
      # The follower (xl list per line is slow under TCG) must have tagged every line of this
      # attach before the tag changes: it logs the guest's PERF-DONE line last.
      wait_until 300 grep -q " XT PERF-DONE $k\$" "$LOG" || fail "the console follower fell behind at attach $k"
      detach "$side" "$name"
      afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died during round $r"; }
    done
    r=$((r + 1))
  done
  kill "$follower" 2>/dev/null
  guest_wait "$name"
  # One line per workload and side and round: VARIANT SIDE ROUND WORKLOAD VALUE UNIT CPU_US_PER_REQUEST
  awk -v v="$name" '
    $4 == "XTIO" && $5 == "PERF" && $6 == "BEGIN" { begin[$1 " " $2 " " $7] = $3; next }
    $4 == "XTIO" && $5 == "PERF" {
      key = $1 " " $2 " " $6
      for (i = 7; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
      unit = ($6 ~ /1m$/) ? "MBps" : "iops"
      cpu = (key in begin && f["ops"] > 0) ? ($3 - begin[key]) * 1e6 / f["ops"] : -1
      printf "%s %s %s %s %s %s %.0f\n", v, $1, $2, $6, f[unit], unit, cpu
    }' "$LOG" >> "$RESULTS"
  # Printed per variant: a boot cut short still leaves the finished variant's rounds.
  grep "^$name " "$RESULTS" | sed 's/^/  [perf] /'
}

run_variant xt-perf "$ROUNDS" ""
run_variant xt-perf256 "$VARIANT_ROUNDS" "xt.blkfront=max_indirect_segments=256 xt.perf_seq_only=1"

for img in "$img_base" "$img_afs"; do
  out=/run/xentest/verify.perf
  xtio verify "$img" --seed $SEED $(xtio_layout) > "$out" 2>&1 || { show verify "$out"; fail "dom0 check of $img: $(grep -m1 'XTIO FAIL' "$out")"; }
done
xt_step "dom0 verified the pattern in both images"

# Per variant, workload and side other than blkback: median and quartiles of the per-round
# ratios side/blkback, each side's median dom0 CPU per request (us), the rounds that had both.
awk -v sides="$SIDES" '
  function sort(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
  function q(a, n, p,   x, lo) { if (n == 0) return -1; x = 1 + (n - 1) * p; lo = int(x); return lo >= n ? a[n] : a[lo] + (a[lo + 1] - a[lo]) * (x - lo) }
  { id = $1 " " $4; val[id, $2, $3] = $5; cpu[id, $2, $3] = $7; unit[id] = $6; if (!(id in seen)) { seen[id] = 1; ids[++nid] = id } if ($3 > maxr) maxr = $3 }
  END {
    ns = split(sides, side, " ")
    for (k = 1; k <= nid; k++) for (s = 1; s <= ns; s++) {
      S = side[s]; if (S == "blkback") continue
      id = ids[k]; n = 0; nb = 0; na = 0
      for (r = 1; r <= maxr; r++) {
        if ((id, "blkback", r) in val && (id, S, r) in val && val[id, "blkback", r] > 0) { ratio[++n] = val[id, S, r] / val[id, "blkback", r] }
        if ((id, "blkback", r) in cpu && cpu[id, "blkback", r] >= 0) cb[++nb] = cpu[id, "blkback", r]
        if ((id, S, r) in cpu && cpu[id, S, r] >= 0) ca[++na] = cpu[id, S, r]
      }
      sort(ratio, n); sort(cb, nb); sort(ca, na)
      split(id, p, " ")
      printf "perf %s %s side=%s ratio=%.2f q1=%.2f q3=%.2f rounds=%d unit=%s dom0_us_per_req_blkback=%.0f dom0_us_per_req_afsfile=%.0f cpu_ratio=%.2f\n",
        p[1], p[2], S, q(ratio, n, 0.5), q(ratio, n, 0.25), q(ratio, n, 0.75), n, unit[id], q(cb, nb, 0.5), q(ca, na, 0.5),
        (q(cb, nb, 0.5) > 0 ? q(ca, na, 0.5) / q(cb, nb, 0.5) : -1)
    }
  }' "$RESULTS" | while read -r line; do xt_metric "$line"; done
# A profile or timing split asked for through AFSFILE_WORKER_ENV (AFSFILE_CPU_PROFILE,
# DEBUG=afsfile:timing): the device processes' summaries, from the worker's log.
grep -E 'afsfile: cpu-profile |afsfile:timing' "$AFSFILE_LOG" | head -n 600 | sed 's/^/  [worker] /'
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died during the stage"; }
rm -f "$img_base" "$img_afs"
exit 0
