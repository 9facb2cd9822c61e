#!/bin/sh
# Issue 21 on real Xen, as many guests as fit: small guests with DISKS afsfile disks each
# (given at xl create) are created one after another until `xl create` fails for want of
# memory (or MAX guests, or FILL_S seconds from the start: what stopped it is reported), all in
# one device host (isolation=identity, the worker afsfile-setup/vbd3-setup started). If Xen has
# then less free memory than the BUSY guests need, the last BUSY idle guests are destroyed to
# make room for them (Xen is full: that is what the fill proved). Then up to
# EXTRA more disks each are hot-attached, one at a time, until EXTRA_UNTIL s. Only DISKS at
# create: libxl runs the hotplug scripts of one xl create at once and gives each 40 s, and six
# afsfile executables starting at once under TCG took longer. Every afsfile process is measured
# (scale.sh: PSS, USS, threads, dom0 kernel memory, idle CPU and wakeups) at 0 disks and at
# growing numbers of disks, and the slope per disk is fitted.
# An idle guest runs a small verified `xtio run` on xvda and on xvdb at boot, then holds (no
# I/O) until dom0 detaches its xvda; then it reads xvdb again and compares, and powers off:
# so every idle guest proves at the end that its disks still work after the crash below.
# BUSY guests (created after the fill with their disk: a guest booted early and left waiting
# for its disk while the fill ran starved and crashed in its own kernel) then write and check
# it again and again (xt.mode=soak), measured beside the idle ones; the
# device host serving every disk is killed with SIGKILL under that load: each disk must be
# served again by a new process (the time is measured), the busy guests must go on writing, no
# guest may see an I/O error, and dom0 checks the busy guests' images at the end.
# XENTEST METRIC lines: `scale mode=fill|fill-busy|after-crash disks=N ... guests=G free_mib=F`,
# `scale-fill-stop guests= disks= reason=`, `scale-fill-extra disks= idle_disks= reason=`, `scale-slope mode=fill ...` (least squares over
# the points with disks, and from 0), `scale-crash disks= procs_after= reattach_s= resume_s=`.
. /xentest/lib.sh
. /xentest/scale.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker is not running"; }
# 96 MiB at least: the guest kernel (Debian's, 50 MB loaded) and its initramfs leave too little
# of 64. 128 by default: under TCG a guest takes ~50 s to create and boot, and the ~1.5 GiB Xen
# has for guests (eleven such guests) must be full (xl create refused) well within the
# stage's time, the crash phase after it.
MEM=$(cmdline_arg xentest.fill_guest_mem);  : "${MEM:=128}"   # MiB per guest
DISKS=$(cmdline_arg xentest.fill_disks);    : "${DISKS:=2}"   # per idle guest at create, xvda..
EXTRA=$(cmdline_arg xentest.fill_extra);    : "${EXTRA:=2}"   # hot-attached afterwards, per guest
EXTRA_UNTIL=$(cmdline_arg xentest.fill_extra_until); : "${EXTRA_UNTIL:=860}" # no new attach after (stage clock)
PIPE=$(cmdline_arg xentest.fill_pipe);      : "${PIPE:=2}"    # idle guests booting at once
MAX=$(cmdline_arg xentest.fill_max);        : "${MAX:=48}"    # idle guests at most
FILL_S=$(cmdline_arg xentest.fill_seconds); : "${FILL_S:=760}" # no new guest after this (stage clock)
BUSY=$(cmdline_arg xentest.fill_busy);      : "${BUSY:=2}"
AT=$(cmdline_arg xentest.fill_at);          : "${AT:=1,4,8,16,24,32}" # guest counts measured at
IDLE_S=$(cmdline_arg xentest.scale_idle);   : "${IDLE_S:=20}"
LETTERS=abcdefghijklmnop
T0=$(now_s)
SCALE_TSV=/run/xentest/scale-fill.tsv
rm -f "$SCALE_TSV"
[ "$DISKS" -ge 2 ] && [ $((DISKS + EXTRA)) -le 16 ] || fail "xentest.fill_disks >= 2, with fill_extra at most 16"
GUEST_MEMORY=$MEM
# The busy guests' layout (guest_cfg and verify_image read these); idle guests get a small one.
SEQ_MB=16 BUF_MB=4 RAND_MB=4 RAND_OPS=512
IMAGE_MB=$((SEQ_MB + BUF_MB + RAND_MB + 16))
IDLE_XT="xt.seq_mb=1 xt.buf_mb=1 xt.rand_mb=1 xt.rand_ops=64 xt.rand_seconds=2"

free_mib() { xl info 2>/dev/null | awk '/^free_memory/ {print $3}'; }
elapsed() { echo $(($(now_s) - T0)); }
devid_of() { echo $((51712 + 16 * ($1 - 1))); } # xvda, xvdb, ... of disk K (1-based)
dev_files() { ls /run/afsfile/status/dev-*.json 2>/dev/null; }
dev_pid() { sed -n 's/^  "pid": \([0-9]*\),*$/\1/p' "$1" 2>/dev/null; }

# create_idle G: xl create idle guest G with its DISKS disks. 0: created; 1: refused for want
# of memory; 2: a hotplug script past libxl's 40 s (TCG on a busy host: the stage measures what
# it has and says so); FILL_STOP says what xl said. Anything else fails the stage.
create_idle() {
  local g=$1 name=xt-fill-$1 k list= cfg out domid
  for k in $(seq 1 "$DISKS"); do
    truncate -s 8M "$IMAGES/fill-$g-$k.img" || fail "cannot create the images"
    list="$list${list:+, }'vdev=xvd$(echo "$LETTERS" | cut -c"$k"),access=rw,$AFS_SPEC,target=$IMAGES/fill-$g-$k.img'"
  done
  cfg=/run/xentest/$name.cfg out=/run/xentest/$name.create
  rm -f "/run/xentest/$name.domid"
  : > "$(guest_console "$name")" # xenconsoled appends to it (not followed: tail -F would wake dom0)
  guest_cfg "$name" "" "$g" "xt.wait=60 xt.hold=2400 xt.dev2=xvdb xt.seed2=$((1000 + g)) $IDLE_XT" |
    sed "s|^disk = .*|disk = [ $list ]|" > "$cfg"
  if ! timeout 120 xl create "$cfg" > "$out" 2>&1; then
    timeout 30 xl destroy "$name" 2>/dev/null
    FILL_STOP=$(create_error "$out")
    if grep -q -i 'memory\|ENOMEM' "$out"; then
      show "xl create" "$out"
      rm -f "$IMAGES"/fill-"$g"-*.img
      return 1
    fi
    if grep -q 'async_exec_timeout' "$out"; then
      show "xl create" "$out"
      FILL_STOP="libxl's hotplug script timeout"
      return 2
    fi
    dump_debug "$name"
    fail "xl create $name failed, not for memory: $FILL_STOP"
  fi
  domid=$(xl domid "$name") || fail "xl create returned but domain $name is not there"
  echo "$domid" > "/run/xentest/$name.domid"
  return 0
}

# idle_ready G: guest G has run its disks' check and holds, every disk of it connected.
idle_ready() {
  local name=xt-fill-$1 k domid be
  guest_log "$name" | grep -q '^XT HOLD' || return 1
  domid=$(guest_domid "$name")
  for k in $(seq 1 "$DISKS"); do
    be=/local/domain/0/backend/$AFS_KIND/$domid/$(devid_of "$k")
    [ "$(xsr "$be/state")" = 4 ] && [ "$(xsr "/local/domain/$domid/device/vbd/$(devid_of "$k")/state")" = 4 ] ||
      return 1
  done
}

# early_crash NAME: the guest died in its own kernel before its /init ran (no XT BOOT line, so
# before any disk I/O): seen under TCG (a NULL call in the guest's crng during start_kernel).
early_crash() { ! guest_log "$1" | grep -q '^XT BOOT' && guest_log "$1" | grep -q 'Kernel panic'; }
CRASHED=0 CRASH_MAX=$(cmdline_arg xentest.fill_crash_retries); : "${CRASH_MAX:=2}"

# recreate_idle G: xl create guest G again after an early crash (Xen frees the dead domain's
# memory asynchronously: refused for memory, it tries again a little later).
recreate_idle() {
  local try
  for try in 1 2 3 4; do
    sleep 5
    create_idle "$1" && return 0
  done
  fail "xl create xt-fill-$1 again after its early crash failed: $FILL_STOP"
}

# wait_idle_ready FROM TO: guests FROM..TO ready; a guest that failed or ended fails the stage,
# except CRASH_MAX times in all a guest that crashed before its /init: it is created again.
wait_idle_ready() {
  local g name deadline=$(($(now_s) + 420)) bad
  for g in $(seq "$1" "$2"); do
    name=xt-fill-$g
    until idle_ready "$g"; do
      bad=$(guest_disk_error "$name")
      [ -n "$bad" ] && guest_fail "$name" "" "guest disk error: $bad"
      if domid_gone "$(guest_domid "$name")"; then
        if early_crash "$name" && [ "$CRASHED" -lt "$CRASH_MAX" ]; then
          CRASHED=$((CRASHED + 1))
          xt_step "$name crashed in its kernel before its /init ($(guest_log "$name" | grep -m1 'Kernel panic' |
            cut -c1-100)): created again ($CRASHED of at most $CRASH_MAX)"
          recreate_idle "$g"
          deadline=$(($(now_s) + 420))
          continue
        fi
        guest_fail "$name" "" "guest $name ended before holding"
      fi
      [ "$(now_s)" -ge "$deadline" ] &&
        guest_fail "$name" "$(backend_of "$name")" "guest $name not holding with $DISKS connected disks within 420 s"
      sleep 1
    done
  done
}

# A check of every guest's console so far: no disk error anywhere.
no_guest_errors() {
  local name bad
  for name in $(ls /run/xentest/ | sed -n 's/^\(xt-fill-[a-z0-9-]*\)\.domid$/\1/p'); do
    bad=$(guest_disk_error "$name")
    [ -n "$bad" ] && guest_fail "$name" "" "guest disk error: $bad"
  done
  return 0
}

# dom0_weight W: credit2 (or credit) weight of dom0; the guests keep the default 256.
dom0_weight() {
  xl sched-credit2 -d 0 -w "$1" > /dev/null 2>&1 || xl sched-credit -d 0 -w "$1" > /dev/null 2>&1 ||
    xt_step "note: dom0's scheduler weight could not be set to $1"
}
# During the fill only, dom0 a little above the guests, so that guests booting under TCG leave
# the hotplug scripts their CPU within libxl's 40 s. Not more: at 1024 a guest left waiting
# starved (RCU stall, then a crash in its kernel); back to the default before the busy guests.
dom0_weight 512

measure fill 0 "guests=0 free_mib=$(free_mib)"

# ---- fill: one idle guest after another until xl create is refused. At most PIPE guests boot
# at once (the next waits for the one PIPE before it to hold): guests booting under TCG take
# the CPU the hotplug scripts of the next xl create need within libxl's time limit.
G=0 FILL_STOP= ready=0
while :; do
  if [ "$G" -ge "$MAX" ]; then FILL_STOP="the cap of $MAX guests (xentest.fill_max)"; break; fi
  if [ "$(elapsed)" -ge "$FILL_S" ]; then FILL_STOP="the time cap: no new guest after ${FILL_S} s"; break; fi
  if [ $((G + 1 - PIPE)) -gt "$ready" ]; then
    wait_idle_ready $((ready + 1)) $((G + 1 - PIPE))
    ready=$((G + 1 - PIPE))
  fi
  free=$(free_mib)
  create_idle $((G + 1)); rc=$?
  if [ "$rc" = 0 ]; then
    G=$((G + 1))
    xt_step "xl create xt-fill-$G ($MEM MiB, $DISKS disks): domid $(guest_domid "xt-fill-$G"), $(elapsed) s," \
      "Xen free memory before ${free} MiB"
  else
    xt_step "xl create xt-fill-$((G + 1)) refused ($(elapsed) s, Xen free memory ${free} MiB): $FILL_STOP"
    FILL_STOP="xl create: $FILL_STOP"
    break
  fi
  if echo ",$AT," | grep -q ",$G,"; then
    wait_idle_ready $((ready + 1)) "$G"
    ready=$G
    no_guest_errors
    measure fill $((G * DISKS)) "guests=$G free_mib=$(free_mib)"
  fi
done
[ "$G" -ge 1 ] || fail "no idle guest could be created: $FILL_STOP"
xt_metric "scale-fill-stop guests=$G disks=$((G * DISKS)) guest_mib=$MEM early_crashes=$CRASHED" \
  "free_mib=$(free_mib) reason=$FILL_STOP" |
  tr -s ' ' | sed 's/reason=\(.*\)/reason="\1"/'
if [ "$ready" -lt "$G" ]; then
  wait_idle_ready $((ready + 1)) "$G"
  no_guest_errors
  measure fill $((G * DISKS)) "guests=$G free_mib=$(free_mib)"
fi
dom0_weight 256
G_FILL=$G
# ---- room for the busy guests: Xen full means the last idle guests make way for them.
need=$((BUSY * (MEM + 8)))
freed_since() { [ "$(free_mib)" -ge $(($1 + MEM - 8)) ]; } # freed_since F: a guest's memory is back
free=$(free_mib)
while [ "$BUSY" -gt 0 ] && [ "$free" -lt "$need" ] && [ "$G" -gt 1 ]; do
  name=xt-fill-$G domid=$(guest_domid "xt-fill-$G")
  timeout 60 xl destroy "$name" || fail "xl destroy $name failed"
  wait_until 60 backends_gone "$domid" || fail "backends of $name (domid $domid) left 60 s after xl destroy"
  # Xen gives a dead domain's memory back asynchronously: wait for it before counting again.
  wait_until 60 freed_since "$free" || xt_step "note: $name's memory not back in Xen 60 s after xl destroy"
  rm -f "/run/xentest/$name.domid" "$IMAGES"/fill-"$G"-*.img
  G=$((G - 1))
  free=$(free_mib)
  xt_step "$name destroyed to make room for the $BUSY busy guests: Xen free memory $free MiB"
done
xt_metric "scale-fill-room guests_destroyed=$((G_FILL - G)) idle_guests=$G free_mib=$free busy_need_mib=$need"
[ "$BUSY" -eq 0 ] || [ "$free" -ge "$need" ] || fail "no room for $BUSY busy guests of $MEM MiB: $free MiB free"
IDLE_DISKS=$((G * DISKS))
dev_count_is() { [ "$(dev_files | wc -l)" = "$1" ]; }
wait_until 120 dev_count_is "$IDLE_DISKS" ||
  fail "$(dev_files | wc -l) device status files for the $IDLE_DISKS disks of $G idle guests"
xt_step "$G idle guests hold $IDLE_DISKS connected disks; $(afs_pids | wc -l) afsfile processes"

# ---- more disks: one xl block-attach at a time, disk K of each guest in turn
extra=0 EXTRA_STOP="all $EXTRA extra disks of each guest attached"
for k in $(seq $((DISKS + 1)) $((DISKS + EXTRA))); do
  for g in $(seq 1 "$G"); do
    if [ "$(elapsed)" -ge "$EXTRA_UNTIL" ]; then EXTRA_STOP="the time cap: no attach after ${EXTRA_UNTIL} s"; break 2; fi
    name=xt-fill-$g letter=$(echo "$LETTERS" | cut -c"$k") out=/run/xentest/xt-fill-$g.attach
    truncate -s 8M "$IMAGES/fill-$g-$k.img" || fail "cannot create the images"
    if ! timeout 120 xl block-attach "$name" "vdev=xvd$letter,access=rw,$AFS_SPEC,target=$IMAGES/fill-$g-$k.img" \
        > "$out" 2>&1; then
      # libxl's 40 s for a hotplug script under TCG: a measuring stage stops attaching, and says so.
      show "xl block-attach" "$out"
      grep -q 'async_exec_timeout' "$out" || guest_fail "$name" "" "xl block-attach $name xvd$letter failed"
      wait_until 120 xs_gone "/local/domain/0/backend/$AFS_KIND/$(guest_domid "$name")/$(devid_of "$k")" ||
        guest_fail "$name" "" "xvd$letter of $name still there 120 s after its attach failed"
      EXTRA_STOP="xl block-attach of $name xvd$letter: libxl's hotplug script timeout"
      break 2
    fi
    guest_connect "$name" "$(devid_of "$k")"
    extra=$((extra + 1))
  done
done
IDLE_DISKS=$((IDLE_DISKS + extra))
xt_step "$extra more disks hot-attached ($(elapsed) s); $IDLE_DISKS idle disks"
xt_metric "scale-fill-extra disks=$extra idle_disks=$IDLE_DISKS reason=\"$EXTRA_STOP\""
if [ "$extra" -gt 0 ]; then
  no_guest_errors
  measure fill "$IDLE_DISKS" "guests=$G free_mib=$(free_mib)"
fi

# ---- busy guests beside them, in the same device host: created now, with their disk
for b in $(seq 1 "$BUSY"); do
  make_image "$IMAGES/fill-busy-$b.img"
  GUEST_CONNECT=no guest_start "xt-fill-busy-$b" "vdev=xvda,access=rw,$AFS_SPEC,target=$IMAGES/fill-busy-$b.img" \
    "$((200 + b))" "xt.wait=120 xt.mode=soak xt.soak=2400"
done
for b in $(seq 1 "$BUSY"); do guest_connect "xt-fill-busy-$b"; done
# soak mode keeps xtio's output off the console but its result lines: a first run done.
for b in $(seq 1 "$BUSY"); do guest_wait_line "xt-fill-busy-$b" '^XT SOAK-RUN 1 ' 300; done
ALL=$((IDLE_DISKS + BUSY))
[ "$BUSY" -gt 0 ] && measure fill-busy "$ALL" "guests=$((G + BUSY)) free_mib=$(free_mib)"

# ---- crash: SIGKILL of the host serving every disk, under the busy guests' writes
host=$(dev_pid "/run/afsfile/status/dev-$(guest_domid xt-fill-busy-1)-$XVDA.json")
[ -n "$host" ] && kill -0 "$host" 2>/dev/null || fail "no live device process serves xt-fill-busy-1"
served=0
for f in $(dev_files); do [ "$(dev_pid "$f")" = "$host" ] && served=$((served + 1)); done
[ "$served" = "$ALL" ] || xt_step "note: process $host serves $served of the $ALL disks"
runs0=
for b in $(seq 1 "$BUSY"); do runs0="$runs0 $(guest_count "xt-fill-busy-$b" '^XT SOAK-RUN')"; done
before=$(grep -c 'ended with signal SIGKILL' "$AFSFILE_LOG")
t_kill=$(cut -d' ' -f1 /proc/uptime)
kill -KILL "$host" || fail "kill -KILL $host failed"
xt_step "SIGKILL to device host $host, which served $served disks; the busy guests were writing"

# reattached: every disk's status file names a live process other than the killed one, Connected.
reattached() {
  local f p n=0
  for f in $(dev_files); do
    p=$(dev_pid "$f")
    [ -n "$p" ] && [ "$p" != "$host" ] && kill -0 "$p" 2>/dev/null || return 1
    grep -q '"state": "Connected"' "$f" || return 1
    n=$((n + 1))
  done
  [ "$n" -ge "$ALL" ]
}
wait_until 300 reattached || {
  show afsfile "$AFSFILE_LOG"
  fail "not every disk served again within 300 s of the SIGKILL"
}
t_back=$(cut -d' ' -f1 /proc/uptime)
reattach_s=$(awk -v a="$t_kill" -v b="$t_back" 'BEGIN {printf "%.1f", b - a}')
procs_after=$(for f in $(dev_files); do dev_pid "$f"; done | sort -u | wc -l)
xt_step "all $ALL disks served again $reattach_s s after the SIGKILL, by $procs_after processes"
# The busy guests go on: a run finished after the kill (each checks what it wrote), for each.
resume_s=
i=0
for b in $(seq 1 "$BUSY"); do
  i=$((i + 1))
  r0=$(echo "$runs0" | cut -d' ' -f$((i + 1)))
  name=xt-fill-busy-$b
  deadline=$(($(now_s) + 300))
  until [ "$(guest_count "$name" '^XT SOAK-RUN')" -gt "$r0" ]; do
    bad=$(guest_disk_error "$name")
    [ -n "$bad" ] && guest_fail "$name" "" "guest disk error after the crash: $bad"
    [ "$(now_s)" -ge "$deadline" ] && guest_fail "$name" "" "$name finished no run within 300 s of the crash"
    sleep 1
  done
done
resume_s=$(awk -v a="$t_kill" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN {printf "%.1f", b - a}')
no_guest_errors
after=$(grep -c 'ended with signal SIGKILL' "$AFSFILE_LOG")
xt_metric "scale-crash disks=$served procs_after=$procs_after reattach_s=$reattach_s busy_runs_done_s=$resume_s" \
  "restarts_logged=$((after - before))"
# Memory after the crash (its groups split): only if the stage has time left for it.
[ "$(elapsed)" -lt 1050 ] && measure after-crash "$ALL" "guests=$((G + BUSY)) free_mib=$(free_mib)"

# ---- the end: the busy guests stop and are checked; each idle guest re-reads xvdb and ends
for b in $(seq 1 "$BUSY"); do image_mark "$IMAGES/fill-busy-$b.img" XTGO; done
for b in $(seq 1 "$BUSY"); do
  guest_wait "xt-fill-busy-$b"
  verify_image "$IMAGES/fill-busy-$b.img" $((200 + b))
done
detach_xvda() { # detach_xvda G
  timeout 120 xl block-detach "xt-fill-$1" xvda > "/run/xentest/xt-fill-$1.detach" 2>&1 ||
    { show "xl block-detach" "/run/xentest/xt-fill-$1.detach"; fail "xl block-detach xt-fill-$1 xvda failed"; }
}
g=1
while [ "$g" -le "$G" ]; do
  pids=
  for h in $(seq "$g" $((g + 1))); do
    [ "$h" -le "$G" ] || break
    detach_xvda "$h" &
    pids="$pids $!"
  done
  for p in $pids; do wait "$p" || fail "an xl block-detach failed"; done
  g=$((g + 2))
done
xt_step "xvda detached from the $G idle guests ($(elapsed) s)"
deadline=$(($(now_s) + 300))
for g in $(seq 1 "$G"); do
  name=xt-fill-$g
  until domid_gone "$(guest_domid "$name")"; do
    [ "$(now_s)" -ge "$deadline" ] && guest_fail "$name" "" "$name still running 300 s after its xvda was detached"
    sleep 1
  done
  bad=$(guest_disk_error "$name")
  [ -n "$bad" ] && { show guest "$(guest_console "$name")"; fail "guest $name: disk error: $bad"; }
  guest_log "$name" | grep -q '^XT DEV2-ALIVE' && guest_log "$name" | grep -q '^XT OK' ||
    { show guest "$(guest_console "$name")"; fail "guest $name did not end with XT DEV2-ALIVE and XT OK"; }
done
xt_step "every idle guest read xvdb back unchanged after the crash and powered off ($(elapsed) s)"
wait_until 300 no_devices || { ls /run/afsfile/status; fail "device status files left 300 s after the guests ended"; }
stop_console
rm -f "$IMAGES"/fill-*.img

echo "  [scale] mode disks pss_kb uss_kb kernel_kb cpu_pct wakeups_s procs threads dom0_cpu_pct"
sed 's/^/  [scale] /' "$SCALE_TSV"
# Slopes per disk (MiB, % CPU, wakeups/s): least squares over the fill points with disks (the
# host exists there), and from 0 (the host's own start included) to the most disks.
awk '$1 == "fill" && $2 > 0 { n++; x = $2; sx += x; sxx += x * x; if (!lo || x < lo) lo = x
       for (i = 3; i <= 7; i++) { sy[i] += $i; sxy[i] += x * $i } }
     $1 == "fill" && $2 == 0 { for (i = 3; i <= 7; i++) z[i] = $i }
     $1 == "fill" && $2 >= m { m = $2; for (i = 3; i <= 7; i++) top[i] = $i }
     END {
       if (n >= 2 && n * sxx - sx * sx > 0) {
         for (i = 3; i <= 7; i++) s[i] = (n * sxy[i] - sx * sy[i]) / (n * sxx - sx * sx)
         printf "XENTEST METRIC '"$XT_STAGE"' scale-slope mode=fill fit=least-squares points=%d disks=%d-%d " \
           "pss_mib_per_disk=%.3f uss_mib_per_disk=%.3f kernel_mib_per_disk=%.3f cpu_pct_per_disk=%.4f " \
           "wakeups_s_per_disk=%.3f\n", n, lo, m, s[3] / 1024, s[4] / 1024, s[5] / 1024, s[6], s[7]
       }
       if (m > 0) printf "XENTEST METRIC '"$XT_STAGE"' scale-slope mode=fill fit=from-0 disks=%d " \
         "pss_mib_per_disk=%.3f uss_mib_per_disk=%.3f kernel_mib_per_disk=%.3f cpu_pct_per_disk=%.4f " \
         "wakeups_s_per_disk=%.3f\n", m, (top[3] - z[3]) / m / 1024, (top[4] - z[4]) / m / 1024,
         (top[5] - z[5]) / m / 1024, (top[6] - z[6]) / m, (top[7] - z[7]) / m
     }' "$SCALE_TSV"
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died during the stage"; }
exit 0
