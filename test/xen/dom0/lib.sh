# Shared helpers of the dom0 test scripts (busybox sh). Source this file.
# Note: busybox sh runs its own applets before PATH (mke2fs, losetup, stat...):
# call the real tools by full path (/usr/sbin/mke2fs, /usr/sbin/losetup).
# A stage runs as its own `sh` process with XT_STAGE (its name) and XT_REASON (a
# file for the failure reason) set by run-stages.sh.

export PATH=/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
AFSFILE=/usr/lib/xen/bin/afsfile
AFSFILE_LOG=/var/log/afsfile-worker.log
AFSFILE_PIDFILE=/run/xentest/afsfile-worker.pid
IMAGES=/images
GUEST_KERNEL=/xentest/guest/vmlinux # ELF: no xz decompression in xl create
GUEST_RAMDISK=/xentest/guest/domu.cpio.gz
XVDA=51712 # the xenstore device id of xvda
AFSFILE_WORKER_ARGS=worker
AFSFILE_INSTALL_ARGS=
[ -f /xentest/config.sh ] && . /xentest/config.sh

# Value of NAME=VALUE on the kernel command line (empty if absent).
cmdline_arg() {
  tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p" | tail -n 1
}

# Tunables, from the dom0 kernel command line (see run.mjs --help).
BOOT_TIMEOUT=$(cmdline_arg xentest.boot_timeout);       : "${BOOT_TIMEOUT:=120}"
CONNECT_TIMEOUT=$(cmdline_arg xentest.connect_timeout); : "${CONNECT_TIMEOUT:=30}"
GUEST_TIMEOUT=$(cmdline_arg xentest.guest_timeout);     : "${GUEST_TIMEOUT:=180}"
SEQ_MB=$(cmdline_arg xentest.seq_mb);                   : "${SEQ_MB:=32}"
BUF_MB=$(cmdline_arg xentest.buf_mb);                   : "${BUF_MB:=8}"
RAND_MB=$(cmdline_arg xentest.rand_mb);                 : "${RAND_MB:=4}"
RAND_OPS=$(cmdline_arg xentest.rand_ops);               : "${RAND_OPS:=1024}"
RAND_SECONDS=$(cmdline_arg xentest.rand_seconds);       : "${RAND_SECONDS:=10}"
IMAGE_MB=$((SEQ_MB + BUF_MB + RAND_MB + 16))

# Guest kernel messages that mean its disk is broken (blkfront's checks of the
# backend's responses, block-layer I/O errors), and xtio's own failure.
GUEST_DISK_ERRORS='xvd[a-z]+: .*(wrong|disabled for further use|bad|error)|I/O error|^XTIO FAIL|^XT FAIL'

xt_step()   { echo "XENTEST STEP $XT_STAGE $*"; }
xt_metric() { echo "XENTEST METRIC $XT_STAGE $*"; }

# Record the reason and end the stage as failed.
fail() {
  echo "$*" > "${XT_REASON:-/dev/null}"
  echo "xentest: FAIL: $*"
  exit 1
}

# Print a file with every line prefixed by "  [TAG] ".
show() {
  [ -s "$2" ] && tr -d '\r' < "$2" | sed "s/^/  [$1] /"
  return 0
}

xsr() { xenstore-read "$1" 2>/dev/null; }

# Seconds since dom0 booted (timeouts use this clock, not loop counts: under
# TCG on a busy host one poll of xl or xenstore can take seconds).
now_s() { local up rest; read -r up rest < /proc/uptime; echo "${up%.*}"; }

# wait_until SECONDS COMMAND...: poll every 0.5 s; false on timeout.
wait_until() {
  local deadline=$(($(now_s) + $1)); shift
  until "$@"; do
    [ "$(now_s)" -ge "$deadline" ] && return 1
    sleep 0.5
  done
}

# Domain checks through xenstore (libxl removes /local/domain/ID when it
# destroys a domain); much cheaper than starting xl under TCG.
domid_gone() { ! xenstore-exists "/local/domain/$1" 2>/dev/null; }
xs_gone() { ! xenstore-exists "$1" 2>/dev/null; }

# Destroy every guest domain (after a failed stage, so the next starts clean).
cleanup_domains() {
  for d in $(xl list 2>/dev/null | awk 'NR > 1 && $1 != "Domain-0" {print $1}'); do
    echo "xentest: destroying leftover domain $d"
    timeout 30 xl destroy "$d" || true
  done
}

# Everything that helps to tell why a guest's disk did not work.
dump_debug() { # dump_debug NAME [BACKEND-PATH]
  local name=$1 be=$2 domid
  stop_console
  domid=$(xl domid "$name" 2>/dev/null)
  echo "xentest: ---- debug dump for $name (domid ${domid:-gone}) ----"
  [ -n "$be" ] && xenstore-ls -f "$be" 2>&1 | sed 's/^/  [backend] /'
  [ -n "$domid" ] && xenstore-ls -f "/local/domain/$domid/device" 2>&1 | sed 's/^/  [frontend] /'
  show "xl create" "/run/xentest/$name.create"
  show "xl log" "/var/log/xen/xl-$name.log"
  show "guest" "/var/log/xen/console/guest-$name.log"
  [ -f /var/log/messages ] && tail -n 40 /var/log/messages | sed 's/^/  [syslog] /'
  if [ -f "$AFSFILE_LOG" ]; then
    tail -n 60 "$AFSFILE_LOG" | sed 's/^/  [afsfile] /'
    timeout 30 "$AFSFILE" status 2>&1 | sed 's/^/  [afsfile status] /'
    for f in $(find /run/afsfile -name '*.log' 2>/dev/null); do
      tail -n 30 "$f" | sed "s|^|  [$f] |"
    done
  fi
  xl dmesg 2>/dev/null | tail -n 15 | sed 's/^/  [xen] /'
  dmesg | tail -n 25 | sed 's/^/  [dom0 kernel] /'
  echo "xentest: ---- end of debug dump ----"
}

# Copy a guest's console log to dom0's console as it grows, each line
# prefixed "  [guest NAME] " (stop_console ends it).
follow_console() {
  local fifo=/run/xentest/console.fifo
  rm -f "$fifo" && mkfifo "$fifo"
  tr -d '\r' < "$fifo" | sed "s/^/  [guest $1] /" &
  tail -n +1 -F "$2" > "$fifo" 2>/dev/null &
  echo $! > /run/xentest/console.tail.pid
}
stop_console() {
  local pidfile=/run/xentest/console.tail.pid
  [ -f "$pidfile" ] || return 0
  sleep 1 # let the last lines through
  kill "$(cat "$pidfile")" 2>/dev/null
  rm -f "$pidfile"
  sleep 0.2
}

# A zero-filled (allocated, not sparse) image file of IMAGE_MB MiB.
make_image() {
  rm -f "$1"
  dd if=/dev/zero of="$1" bs=1M count="$IMAGE_MB" 2>/dev/null || fail "cannot create $1"
}

xtio_layout() {
  echo "--seq-mb $SEQ_MB --buf-mb $BUF_MB --rand-mb $RAND_MB --rand-ops $RAND_OPS"
}

# The most telling line of a failed xl create's output: the hotplug script's
# error, else libxl's first error, else the last line.
create_error() {
  grep -m1 'script: ' "$1" | sed 's/.*script: /hotplug script: /' | grep . ||
    grep -m1 'libxl: error' "$1" | grep . ||
    tail -n 1 "$1"
}

# guest_run NAME DISK-SPEC SEED
# Boot a PV guest whose /init runs `xtio run /dev/xvda` (see domu/init) with the
# given disk, wait for its blkfront to connect (fail fast), for it to power off,
# and for its devices to be removed; print its console; report its numbers as
# XENTEST METRIC. Fails the stage on any problem.
guest_run() {
  local name=$1 disk=$2 seed=$3
  local cfg=/run/xentest/$name.cfg con=/var/log/xen/console/guest-$name.log
  local domid fe be fs bs hs t0 now since
  rm -f "$con" "/var/log/xen/xl-$name.log"
  : > "$con" # xenconsoled appends to it; following it from the start shows the guest live
  cat > "$cfg" <<EOF
name = "$name"
type = "pv"
kernel = "$GUEST_KERNEL"
ramdisk = "$GUEST_RAMDISK"
extra = "console=hvc0 quiet loglevel=4 xt.seed=$seed xt.seq_mb=$SEQ_MB xt.buf_mb=$BUF_MB xt.rand_mb=$RAND_MB xt.rand_ops=$RAND_OPS xt.rand_seconds=$RAND_SECONDS"
memory = 256
vcpus = 1
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
disk = [ '$disk' ]
EOF
  xt_step "xl create $name disk=$disk"
  if ! timeout 60 xl create "$cfg" > "/run/xentest/$name.create" 2>&1; then
    dump_debug "$name"
    timeout 30 xl destroy "$name" 2>/dev/null
    fail "xl create failed: $(create_error "/run/xentest/$name.create")"
  fi
  domid=$(xl domid "$name") || fail "xl create returned but domain $name is not there"
  fe=/local/domain/$domid/device/vbd/$XVDA
  be=$(xsr "$fe/backend")
  xt_step "created domid $domid backend $be"
  follow_console "$name" "$con"

  # Fail fast: a backend that never connects would keep blkfront's probe (the
  # guest's modprobe) waiting ~270 s. Two clocks: the guest must boot and load
  # blkfront (frontend state >= 3) within BOOT_TIMEOUT, a slow host's problem;
  # from then on the backend must connect within CONNECT_TIMEOUT.
  t0=$(now_s) since=
  while :; do
    fs=$(xsr "$fe/state"); bs=$(xsr "$be/state"); hs=$(xsr "$be/hotplug-status")
    [ "$fs" = 4 ] && [ "$bs" = 4 ] && break
    now=$(now_s)
    if [ -z "$since" ] && [ "${fs:-0}" -ge 3 ] 2>/dev/null; then
      since=$now
      xt_step "frontend initialised (state $fs), backend state ${bs:-none}"
    fi
    if [ "$hs" = error ] || [ "$hs" = busy ]; then
      dump_debug "$name" "$be"; timeout 30 xl destroy "$name"
      fail "hotplug-status=$hs: $(xsr "$be/hotplug-error")"
    fi
    if domid_gone "$domid"; then
      dump_debug "$name" "$be"
      fail "domain $name went away before its disk connected (frontend $fs, backend $bs)"
    fi
    if [ -n "$since" ] && [ $((now - since)) -ge "$CONNECT_TIMEOUT" ]; then
      dump_debug "$name" "$be"; timeout 30 xl destroy "$name"
      fail "backend did not connect within ${CONNECT_TIMEOUT}s of the frontend (frontend state ${fs:-none}, backend state ${bs:-none})"
    fi
    if [ -z "$since" ] && [ $((now - t0)) -ge "$BOOT_TIMEOUT" ]; then
      dump_debug "$name" "$be"; timeout 30 xl destroy "$name"
      fail "guest blkfront not initialised after ${BOOT_TIMEOUT}s (frontend state ${fs:-none}, backend state ${bs:-none})"
    fi
    sleep 0.5
  done
  xt_step "connected (frontend 4, backend 4)"

  # Wait for the guest to power off; fail at once on a block-layer error on its
  # console (a disk blkfront has disabled never completes the I/O).
  local deadline=$(($(now_s) + GUEST_TIMEOUT)) bad
  until domid_gone "$domid"; do
    bad=$(tr -d '\r' < "$con" | grep -m1 -E "$GUEST_DISK_ERRORS")
    if [ -n "$bad" ]; then
      dump_debug "$name" "$be"; timeout 30 xl destroy "$name"
      fail "guest disk error: $bad"
    fi
    if [ "$(now_s)" -ge "$deadline" ]; then
      dump_debug "$name" "$be"; timeout 30 xl destroy "$name"
      fail "guest still running after ${GUEST_TIMEOUT}s"
    fi
    sleep 0.5
  done
  xt_step "guest powered off"
  stop_console
  if ! wait_until 20 xs_gone "$be"; then
    dump_debug "$name" "$be"
    fail "backend $be not removed 20s after the guest ended"
  fi
  xt_step "devices removed"

  if grep -q "unable\|error" "/var/log/xen/xl-$name.log" 2>/dev/null; then
    show "xl log" "/var/log/xen/xl-$name.log"
  fi
  grep -q '^XTIO OK' "$con" || {
    dump_debug "$name" "$be"
    fail "guest I/O failed: $(grep -m1 '^XTIO FAIL\|^XT FAIL' "$con" || echo 'no XTIO OK on its console')"
  }
  GUEST_RESULT=$(sed -n 's/^XTIO RESULT //p' "$con" | tr -d '\r')
  xt_metric "$GUEST_RESULT"
  # How many region C blocks the guest wrote (its random-write phase is time-bounded).
  GUEST_RAND_WRITTEN=$(echo "$GUEST_RESULT" | tr ' ' '\n' | sed -n 's/^rand_write_blocks=//p')
}

# verify_image FILE SEED: dom0 reads the image and checks the pattern the
# guest of the last guest_run wrote (and that nothing else was written).
verify_image() {
  local out=/run/xentest/verify.$XT_STAGE
  [ -n "$GUEST_RAND_WRITTEN" ] || fail "the guest reported no rand_write_blocks"
  if xtio verify "$1" --seed "$2" --rand-written "$GUEST_RAND_WRITTEN" $(xtio_layout) > "$out" 2>&1; then
    show verify "$out"
    xt_step "dom0 verified the pattern in $1"
  else
    show verify "$out"
    fail "dom0 check of $1: $(grep -m1 'XTIO FAIL' "$out")"
  fi
}

afsfile_worker_alive() {
  [ -f "$AFSFILE_PIDFILE" ] && kill -0 "$(cat "$AFSFILE_PIDFILE")" 2>/dev/null
}
