# What afsfile costs dom0, for the scale stages (issue 21): source after lib.sh.
# measure MODE DISKS [EXTRA]: after a settle, every afsfile process (the worker, its spare, its
# device processes, found by executable: device processes are exec'd from it too) is measured
# over an idle window of IDLE_S seconds: PSS and USS (smaps_rollup), threads, CPU time and
# context switches (wakeups); with them dom0's kernel memory (Slab + KernelStack + PageTables of
# /proc/meminfo) and all of dom0's CPU. One `scale mode=M disks=N ...` METRIC line (EXTRA, words
# such as guests=G, appended), and a line of SCALE_TSV:
#   mode disks pss_kb uss_kb kernel_kb cpu_pct wakeups_s procs threads dom0_cpu_pct
EXE=$(readlink -f "$AFSFILE")
SCALE_TSV=${SCALE_TSV:-/run/xentest/scale.tsv}
: "${IDLE_S:=20}"
: "${SETTLE_S:=10}"

afs_pids() {
  local d
  for d in /proc/[0-9]*; do
    [ "$(readlink "$d/exe" 2>/dev/null)" = "$EXE" ] && echo "${d#/proc/}"
  done
}

# One line of totals over the afsfile processes: procs threads pss_kb uss_kb ticks switches.
totals() {
  local p procs=0 threads=0 pss=0 uss=0 ticks=0 sw=0 v
  for p in $(afs_pids); do
    procs=$((procs + 1))
    v=$(sed -n 's/^Threads:[[:space:]]*//p' "/proc/$p/status" 2>/dev/null); threads=$((threads + ${v:-0}))
    v=$(awk '/^Pss:/ {s += $2} END {print s + 0}' "/proc/$p/smaps_rollup" 2>/dev/null); pss=$((pss + ${v:-0}))
    v=$(awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s + 0}' "/proc/$p/smaps_rollup" 2>/dev/null)
    uss=$((uss + ${v:-0}))
    # utime + stime (fields 14, 15), counted after the ")" that ends the command name.
    v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}'); ticks=$((ticks + ${v:-0}))
    v=$(cat /proc/$p/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s + 0}')
    sw=$((sw + ${v:-0}))
  done
  echo "$procs $threads $pss $uss $ticks $sw"
}

kernel_kb() { awk '/^(Slab|KernelStack|PageTables):/ {s += $2} END {print s}' /proc/meminfo; }
# dom0's CPU ticks not idle (all CPUs, /proc/stat: user nice system idle iowait irq softirq steal).
dom0_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }

# CPU time in USER_HZ ticks (100 per second on x86).
measure() { # measure MODE DISKS [EXTRA]
  local a b t0 t1 cpu wk kern d0 d1 dcpu extra=$3
  sleep "$SETTLE_S"
  a=$(totals); t0=$(cut -d' ' -f1 /proc/uptime); d0=$(dom0_ticks)
  sleep "$IDLE_S"
  b=$(totals); t1=$(cut -d' ' -f1 /proc/uptime); d1=$(dom0_ticks)
  kern=$(kernel_kb)
  dcpu=$(awk -v d="$((d1 - d0))" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", d / (b - a)}')
  set -- "$1" "$2" $a $b
  # Before: $3 procs, $4 threads, $5 pss, $6 uss, $7 ticks, $8 switches; after: $9 .. ${14}.
  cpu=$(awk -v d="$((${13} - $7))" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", d / (b - a)}')
  wk=$(awk -v d="$((${14} - $8))" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", d / (b - a)}')
  xt_metric "scale mode=$1 disks=$2 procs=$9 threads=${10} pss_kb=${11} uss_kb=${12} kernel_kb=$kern" \
    "cpu_pct=$cpu wakeups_s=$wk dom0_cpu_pct=$dcpu${extra:+ $extra}"
  echo "$1 $2 ${11} ${12} $kern $cpu $wk $9 ${10} $dcpu" >> "$SCALE_TSV"
}

spare_ready() { grep -A3 '"spare"' /run/afsfile/status/worker.json 2>/dev/null | grep -q '"ready": true'; }
no_afs() { [ -z "$(afs_pids)" ]; }
no_devices() { ! ls /run/afsfile/status/dev-*.json > /dev/null 2>&1; }

# Stops the running worker (it serves no disk then) and starts it with ARGS.
restart_worker() {
  local old
  if afsfile_worker_alive; then
    old=$(cat "$AFSFILE_PIDFILE")
    kill -TERM "$old"
    wait_until 30 sh -c "! kill -0 $old 2>/dev/null" || kill -KILL "$old"
  fi
  # Its device processes (the spare, hosts ending after their last disk) go with it.
  wait_until 30 no_afs || fail "afsfile processes left 30 s after the worker stopped: $(afs_pids | tr '\n' ' ')"
  env $AFSFILE_WORKER_ENV setsid "$AFSFILE" "$@" >> "$AFSFILE_LOG" 2>&1 < /dev/null &
  echo $! > "$AFSFILE_PIDFILE"
  sleep 2
  afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile $* exited at start"; }
  wait_until 120 spare_ready || { show afsfile "$AFSFILE_LOG"; fail "no spare ready 120 s after starting $*"; }
  xt_step "afsfile $* started, pid $(cat "$AFSFILE_PIDFILE"), its spare ready"
}
