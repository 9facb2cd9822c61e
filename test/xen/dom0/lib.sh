# Shared helpers of the dom0 test scripts (busybox sh). Source this file.
# Note: busybox sh runs its own applets before PATH (mke2fs, losetup, stat...):
# call the real tools by full path (/usr/sbin/mke2fs, /usr/sbin/losetup).
# A stage runs as its own `sh` process with XT_STAGE (its name) and XT_REASON (a
# file for the failure reason) set by run-stages.sh.

XEN_VERSION=4.17
[ -f /xentest/config.sh ] && . /xentest/config.sh
export PATH=/usr/lib/xen-$XEN_VERSION/bin:/usr/sbin:/usr/bin:/sbin:/bin
AFSFILE=/usr/lib/xen/bin/afsfile
AFSFILE_LOG=/var/log/afsfile-worker.log
AFSFILE_PIDFILE=/run/xentest/afsfile-worker.pid
IMAGES=/images
GUEST_KERNEL=/xentest/guest/vmlinux # ELF: no xz decompression in xl create
GUEST_RAMDISK=/xentest/guest/domu.cpio.gz
XVDA=51712 # the xenstore device id of xvda
# The route afsfile's disks take: vbd (script=, kernel blkback unloaded; the
# default on 4.17) or vbd3 (the vbd3-* stages, and the default from Xen 4.19 on:
# backendtype=tap, which puts the device under backend/vbd3 beside a loaded
# blkback). Stages write "$AFS_SPEC" into their disk specs and find the backend
# with backend_of.
case $XEN_VERSION in 4.17) AFS_ROUTE=${AFS_ROUTE:-vbd} ;; *) AFS_ROUTE=${AFS_ROUTE:-vbd3} ;; esac
if [ "$AFS_ROUTE" = vbd3 ]; then
  AFS_KIND=vbd3 AFS_SPEC=backendtype=tap,script=block-afsfile
else
  AFS_KIND=vbd AFS_SPEC=script=block-afsfile
fi
AFSFILE_WORKER_ARGS=worker
AFSFILE_WORKER_ENV=
AFSFILE_INSTALL_ARGS=
[ -f /xentest/config.sh ] && . /xentest/config.sh # again: it overrides the defaults above

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
GUEST_MEM=$(cmdline_arg xentest.guest_mem);             : "${GUEST_MEM:=256}"
IMAGE_MB=$((SEQ_MB + BUF_MB + RAND_MB + 16))

# Guest kernel messages that mean its disk is broken (blkfront's checks of the
# backend's responses, block-layer I/O errors), and xtio's own failure.
GUEST_DISK_ERRORS='xvd[a-z]+: .*(wrong|disabled for further use|bad|error)|I/O error|^XTIO FAIL|^XT FAIL'

# The functional stages (all but the baseline and afsfile-rw, the performance
# anchor) cut xtio's time-bounded random phases to 3 s each: they check
# behaviour, not speed, and a full run stays within minutes.
functional_io() { [ "$RAND_SECONDS" -gt 3 ] && RAND_SECONDS=3; return 0; }

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
  [ -s "$2" ] && tr -d '\r' < "$2" | sed "s|^|  [$1] |"
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
# prefixed "  [guest NAME] " (stop_console NAME ends it). One per guest.
follow_console() {
  local fifo=/run/xentest/console.$1.fifo
  rm -f "$fifo" && mkfifo "$fifo"
  tr -d '\r' < "$fifo" | sed "s/^/  [guest $1] /" &
  tail -n +1 -F "$2" > "$fifo" 2>/dev/null &
  echo $! > "/run/xentest/console.$1.pid"
}
stop_console() { # stop_console [NAME] (default: every guest)
  local pidfile
  for pidfile in /run/xentest/console.${1:-*}.pid; do
    [ -f "$pidfile" ] || continue
    sleep 1 # let the last lines through
    kill "$(cat "$pidfile")" 2>/dev/null
    rm -f "$pidfile"
    sleep 0.2
  done
  return 0
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

guest_console() { echo "/var/log/xen/console/guest-$1.log"; }
# The guest's console without carriage returns.
guest_log() { tr -d '\r' < "$(guest_console "$1")" 2>/dev/null; }
# How many console lines of guest NAME match the extended regex RE.
guest_count() { guest_log "$1" | grep -c -E "$2"; }
guest_domid() { cat "/run/xentest/$1.domid"; }
# The backend directory of guest NAME's afsfile disk DEVID (default xvda): under
# backend/vbd, or backend/vbd3 on the tap route (AFS_ROUTE=vbd3).
backend_of() { echo "/local/domain/0/backend/${3:-$AFS_KIND}/$(guest_domid "$1")/${2:-$XVDA}"; }
# Both kinds gone for domain DOMID (blkback's vbd, the tap route's vbd3).
backends_gone() { xs_gone "/local/domain/0/backend/vbd/$1" && xs_gone "/local/domain/0/backend/vbd3/$1"; }

# The first line on guest NAME's console that means its disk is broken (empty if
# none); a stage sets GUEST_DISK_EXPECTED (extended regex) to errors it causes itself.
guest_disk_error() {
  guest_log "$1" | grep -E "$GUEST_DISK_ERRORS" | grep -v -E "${GUEST_DISK_EXPECTED:-^$}" | head -n 1
}

# Fail the stage with a debug dump of guest NAME (and destroy it).
guest_fail() { # guest_fail NAME BACKEND MESSAGE
  dump_debug "$1" "$2"
  timeout 30 xl destroy "$1" 2>/dev/null
  fail "$3"
}

# guest_cfg NAME DISK-SPEC SEED [XT-ARGS]: print the xl config of a PV guest
# whose /init (domu/init) runs the workload XT-ARGS name (xt.mode=..., default
# the rw pattern) with the xtio layout and SEED. An empty DISK-SPEC means no
# disk at boot. GUEST_ON_REBOOT (default destroy) is its on_reboot.
guest_cfg() {
  local disks=
  [ -n "$2" ] && disks="'$2'"
  cat <<EOF
name = "$1"
type = "pv"
kernel = "$GUEST_KERNEL"
ramdisk = "$GUEST_RAMDISK"
extra = "console=hvc0 quiet loglevel=4 xt.seed=$3 xt.seq_mb=$SEQ_MB xt.buf_mb=$BUF_MB xt.rand_mb=$RAND_MB xt.rand_ops=$RAND_OPS xt.rand_seconds=$RAND_SECONDS $4"
memory = ${GUEST_MEMORY:-$GUEST_MEM}
vcpus = 1
on_poweroff = "destroy"
on_reboot = "${GUEST_ON_REBOOT:-destroy}"
on_crash = "destroy"
disk = [ $disks ]
EOF
}

# image_mark FILE TEXT: write TEXT into the last 4 KiB block of an image (outside
# xtio's layout): a signal to a guest waiting in `xtio waitmark`.
image_mark() {
  local blocks=$(($(stat -c %s "$1") / 4096 - 1))
  printf '%s\n' "$2" | dd of="$1" bs=4096 seek=$blocks count=1 conv=notrunc,fsync 2>/dev/null
}

# guest_start NAME DISK-SPEC SEED [XT-ARGS]: xl create the guest of guest_cfg,
# follow its console; with a disk, wait for it to connect (guest_connect).
guest_start() {
  local name=$1 disk=$2 cfg=/run/xentest/$1.cfg con domid kind
  con=$(guest_console "$name")
  rm -f "$con" "/var/log/xen/xl-$name.log" "/run/xentest/$name.domid"
  : > "$con" # xenconsoled appends to it; following it from the start shows the guest live
  guest_cfg "$@" > "$cfg"
  xt_step "xl create $name disk=${disk:-none} $4"
  if ! timeout 60 xl create "$cfg" > "/run/xentest/$name.create" 2>&1; then
    dump_debug "$name"
    timeout 30 xl destroy "$name" 2>/dev/null
    fail "xl create failed: $(create_error "/run/xentest/$name.create")"
  fi
  domid=$(xl domid "$name") || fail "xl create returned but domain $name is not there"
  echo "$domid" > "/run/xentest/$name.domid"
  # Its backend kind from its disk: the tap route's vbd3, else vbd (blkback or afsfile).
  case $disk in *backendtype=tap*) kind=vbd3 ;; *) kind=vbd ;; esac
  xt_step "created $name domid $domid${disk:+ backend $(backend_of "$name" "" "$kind")}"
  follow_console "$name" "$con"
  # GUEST_CONNECT=no: the caller connects it later (several guests at once).
  [ -z "$disk" ] || [ "$GUEST_CONNECT" = no ] || guest_connect "$name"
}

# guest_connect NAME [DEVID]: wait until the disk's frontend and backend are both
# Connected (4). Fail fast: a backend that never connects would keep blkfront's
# probe (the guest's modprobe) waiting ~270 s. Two clocks: the guest must boot
# and load blkfront (frontend state >= 3) within BOOT_TIMEOUT, a slow host's
# problem; from then on the backend must connect within CONNECT_TIMEOUT.
guest_connect() {
  local name=$1 devid=${2:-$XVDA} domid fe be fs bs hs t0 now since
  domid=$(guest_domid "$name")
  fe=/local/domain/$domid/device/vbd/$devid
  be=$(xsr "$fe/backend")
  [ -n "$be" ] || be=$(backend_of "$name" "$devid")
  t0=$(now_s) since=
  while :; do
    fs=$(xsr "$fe/state"); bs=$(xsr "$be/state"); hs=$(xsr "$be/hotplug-status")
    [ "$fs" = 4 ] && [ "$bs" = 4 ] && break
    now=$(now_s)
    if [ -z "$since" ] && [ "${fs:-0}" -ge 3 ] 2>/dev/null; then
      since=$now
      xt_step "$name: frontend initialised (state $fs), backend state ${bs:-none}"
    fi
    if [ "$hs" = error ] || [ "$hs" = busy ]; then
      guest_fail "$name" "$be" "hotplug-status=$hs: $(xsr "$be/hotplug-error")"
    fi
    domid_gone "$domid" &&
      guest_fail "$name" "$be" "domain $name went away before its disk connected (frontend $fs, backend $bs)"
    if [ -n "$since" ] && [ $((now - since)) -ge "$CONNECT_TIMEOUT" ]; then
      guest_fail "$name" "$be" "backend did not connect within ${CONNECT_TIMEOUT}s of the frontend (frontend state ${fs:-none}, backend state ${bs:-none})"
    fi
    if [ -z "$since" ] && [ $((now - t0)) -ge "$BOOT_TIMEOUT" ]; then
      guest_fail "$name" "$be" "guest blkfront not initialised after ${BOOT_TIMEOUT}s (frontend state ${fs:-none}, backend state ${bs:-none})"
    fi
    sleep 0.5
  done
  xt_step "$name: $be connected (frontend 4, backend 4)"
}

# guest_wait_line NAME REGEX SECONDS: wait for a console line of guest NAME
# matching REGEX (extended); a disk error or the guest's end fails the stage.
guest_wait_line() {
  local name=$1 re=$2 deadline=$(($(now_s) + $3)) bad domid
  domid=$(guest_domid "$name")
  until guest_log "$name" | grep -q -E "$re"; do
    bad=$(guest_disk_error "$name")
    [ -n "$bad" ] && guest_fail "$name" "" "guest disk error: $bad"
    # xenconsoled may write a guest's last lines after the domain is gone (a guest
    # that prints and powers off at once): look once more before failing.
    if domid_gone "$domid"; then
      sleep 2
      guest_log "$name" | grep -q -E "$re" && return 0
      guest_fail "$name" "" "guest $name ended before printing /$re/"
    fi
    [ "$(now_s)" -ge "$deadline" ] && guest_fail "$name" "" "no /$re/ from guest $name within $3 s"
    sleep 0.5
  done
}

# guest_wait NAME: wait for the guest to power off, failing at once on a
# block-layer error on its console (a disk blkfront has disabled never completes
# the guest's I/O); then its backend devices must be removed, and it must have
# printed XT OK. Sets GUEST_RESULT (its last XTIO RESULT, also reported as
# XENTEST METRIC) and GUEST_RAND_WRITTEN.
guest_wait() {
  local name=$1 domid bad deadline=$(($(now_s) + GUEST_TIMEOUT))
  domid=$(guest_domid "$name")
  # (A stage that reboots a guest writes its new domid to /run/xentest/NAME.domid.)
  until domid_gone "$domid"; do
    bad=$(guest_disk_error "$name")
    [ -n "$bad" ] && guest_fail "$name" "" "guest disk error: $bad"
    [ "$(now_s)" -ge "$deadline" ] && guest_fail "$name" "" "guest $name still running after ${GUEST_TIMEOUT}s"
    sleep 0.5
  done
  xt_step "$name powered off"
  stop_console "$name"
  if ! wait_until 20 backends_gone "$domid"; then
    dump_debug "$name" "/local/domain/0/backend/$AFS_KIND/$domid"
    fail "backends of $name (domid $domid) not removed 20s after the guest ended"
  fi
  xt_step "$name: devices removed"
  if grep -q "unable\|error" "/var/log/xen/xl-$name.log" 2>/dev/null; then
    show "xl log" "/var/log/xen/xl-$name.log"
  fi
  bad=$(guest_disk_error "$name")
  [ -n "$bad" ] && { dump_debug "$name"; fail "guest disk error: $bad"; }
  guest_log "$name" | grep -q '^XT OK' || {
    dump_debug "$name"
    fail "guest $name failed: $(guest_log "$name" | grep -m1 '^XTIO FAIL\|^XT FAIL' || echo 'no XT OK on its console')"
  }
  GUEST_RESULT=$(guest_log "$name" | sed -n 's/^XTIO RESULT //p' | tail -n 1)
  [ -n "$GUEST_RESULT" ] && xt_metric "$GUEST_RESULT"
  # How many region C blocks the guest wrote (its random-write phase is time-bounded).
  GUEST_RAND_WRITTEN=$(echo "$GUEST_RESULT" | tr ' ' '\n' | sed -n 's/^rand_write_blocks=//p')
}

# guest_run NAME DISK-SPEC SEED [XT-ARGS]: guest_start, then guest_wait.
guest_run() {
  guest_start "$@"
  guest_wait "$1"
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

# lock_watch IMAGE: in the background, sample /proc/locks every 0.1 s for IMAGE's inode and
# append a line "UPTIME HOLDERS" to /run/xentest/locks.$XT_STAGE each time the holders change
# (HOLDERS: PID/FD+FD:WRITE|READ,... of the granted flocks, or none). lock_watch_stop ends it and
# fails the stage if two exclusive holders were ever seen at once.
lock_watch() {
  local id dev out=/run/xentest/locks.$XT_STAGE
  # /proc/locks names a file MAJOR:MINOR:INODE, the device numbers in hex (fs/locks.c).
  dev=$(stat -c %d "$1") || fail "cannot stat $1"
  id=$(printf '%02x:%02x:%s' $(((dev >> 8) & 0xfff)) $(((dev & 0xff) | ((dev >> 12) & 0xfff00))) "$(stat -c %i "$1")")
  : > "$out"
  (
    last=x
    while kill -0 $$ 2>/dev/null; do # ends with the stage
      read -r up rest < /proc/uptime
      held=$(awk -v id="$id" '$0 !~ /->/ { for (i = 3; i <= NF; i++) if ($i == id) {
        printf "%s%s:%s", sep, $(i - 1), $(i - 2); sep = " " } }' /proc/locks)
      # Each holder as PID/FDS (the descriptors of its open file): a device host serves several
      # devices, a migration's source and destination too, in one process.
      cur=
      for h in $held; do
        p=${h%%:*}
        fds=$(grep -l " $id " /proc/"$p"/fdinfo/* 2>/dev/null | sed 's|.*/||' | sort -n | tr '\n' '+')
        cur="$cur${cur:+,}$p/${fds%+}:${h#*:}"
      done
      [ -n "$cur" ] || cur=none
      if [ "$cur" != "$last" ]; then echo "$up $cur" >> "$out"; last=$cur; fi
      sleep 0.1
    done
  ) &
  echo $! > "/run/xentest/lockwatch.$XT_STAGE.pid"
}
lock_watch_stop() {
  local out=/run/xentest/locks.$XT_STAGE pidfile=/run/xentest/lockwatch.$XT_STAGE.pid
  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
  rm -f "$pidfile"
  show locks "$out"
  if grep -q ',.*WRITE\|WRITE.*,' "$out"; then fail "two holders of an exclusive image lock at once: $(grep -m1 , "$out")"; fi
  return 0
}
# lock_holders: the distinct holders (PID/FDS) lock_watch saw, in order (none left out).
lock_holders() {
  awk '$2 != "none" { split($2, a, ":"); if (a[1] != last) { printf "%s ", a[1]; last = a[1] } }' \
    "/run/xentest/locks.$XT_STAGE"
}

# After xl save or xl migrate: the old domain OLD-DOMID and its backend OLD-BACKEND are gone
# (the backend within 20 s: the device let go of the image). WHAT names the operation.
guest_left() { # guest_left OLD-DOMID OLD-BACKEND WHAT
  domid_gone "$1" || fail "domain $1 is still there after $3"
  wait_until 20 xs_gone "$2" || fail "backend $2 not removed 20s after $3"
}

# After xl restore or xl migrate: guest NAME runs again as a new domain (not OLD-DOMID, if
# given); its domid is recorded for the guest_* helpers.
guest_returned() { # guest_returned NAME WHAT [OLD-DOMID]
  local d
  d=$(xl domid "$1") || fail "$2 returned but $1 is not there"
  [ "$d" != "${3:-}" ] || fail "$1 is still domid $d after $2"
  echo "$d" > "/run/xentest/$1.domid"
}

# The end of a save-mode guest (xt.mode=save) after its domain moved: dom0 marks the image,
# the guest (still polling its disk) sees the mark and powers off; its pattern is verified and
# the image removed.
guest_mark_verify() { # guest_mark_verify NAME IMAGE SEED WHAT
  image_mark "$2" XTGO || fail "cannot mark $2"
  guest_wait "$1"
  guest_log "$1" | grep -q '^XTIO MARK XTGO' || fail "the guest did not see dom0's mark after $4"
  verify_image "$2" "$3"
  afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died during the stage"; }
  rm -f "$2"
}
