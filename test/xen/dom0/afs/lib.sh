# Helpers of the afs-* stages in dom0 (busybox sh): the cell's settings and daemons
# (cell.sh), the administrator's token, ACLs, the server-side view of a file. Source this file.
. /xentest/afs/cell.sh
# The client in use: kAFS, until afs-openafs-client switches this boot to the OpenAFS client.
AFS_CLIENT=$(cat /run/xentest/afs-client 2>/dev/null); : "${AFS_CLIENT:=kafs}"
# Where the images volume is: kAFS mounts it at /afs; the OpenAFS client (-dynroot) reaches it
# through a mount point in root.cell.
if [ "$AFS_CLIENT" = openafs ]; then AFS_DIR=/afs/$AFS_CELL/$AFS_VOLUME; else AFS_DIR=/afs; fi
# The stages find an image's namei file on /vicepa by its size: the OpenAFS client's images
# (same boot, same volume) are 100 MiB larger than kAFS's.
if [ "$AFS_CLIENT" = openafs ]; then AFS_MB_BIAS=100; else AFS_MB_BIAS=0; fi

# Runs CMD... as the cell's administrator: a new session keyring (kAFS's PAG) with a token
# from the admin keytab, a private ticket cache; nothing of it outlives the command.
afs_admin() {
  local aklog="aklog-kafs \"\$3\"" wrap="keyctl session - sh"
  # pagsh execs $SHELL with its own arguments: the same `sh -c SCRIPT NAME ARGS...` for both.
  [ "$AFS_CLIENT" = openafs ] && { aklog="aklog -c \"\$3\""; wrap=pagsh; }
  KRB5CCNAME=FILE:/run/afs-admin.cc SHELL=/bin/sh $wrap -c "
    kinit -k -t \"\$1\" \"\$2\" && $aklog || exit 99
    shift 3; \"\$@\"; rc=\$?; kdestroy 2>/dev/null; exit \$rc
  " afs_admin "$AFS_ADMIN_KEYTAB" "$AFS_ADMIN" "$AFS_CELL" "$@"
}

# Runs CMD... with no token at all, in a PAG (or session keyring) of its own.
afs_anonymous() {
  if [ "$AFS_CLIENT" = openafs ]; then SHELL=/bin/sh pagsh -c '"$@"' afs_anonymous "$@"; else keyctl session - "$@"; fi
}

# The kernel client: kAFS (modules, the cell, the volume mounted at /afs) or the OpenAFS
# client (openafs.ko built on the host, afsd with a memory cache and -dynroot).
afs_client_start() {
  if [ "$AFS_CLIENT" = openafs ]; then
    [ -f /xentest/afs/openafs.ko ] || { afs_log "no openafs.ko in dom0 (prepare with XEN_TEST_AFS_OPENAFS=1)"; return 1; }
    lsmod | grep -q '^openafs' || insmod /xentest/afs/openafs.ko || return 1
    mkdir -p /afs /var/cache/openafs
    echo "/afs:/var/cache/openafs:65536" > /etc/openafs/cacheinfo
    # No -afsdb: the cell is in /etc/openafs/CellServDB, and nothing may look beyond dom0.
    afs_daemon afsd /sbin/afsd -memcache -dynroot -fakestat -nosettime
    afs_retry 60 afs_admin ls "/afs/$AFS_CELL" || return 1
    # The images volume's mount point in root.cell (admin has every right there), and the l
    # right on root.cell's root for the worker, which reaches its images through it.
    afs_admin fs mkmount -dir "$AFS_DIR" -vol "$AFS_VOLUME" -cell "$AFS_CELL" 2>&1 | grep -v 'File exists'
    afs_admin fs setacl -dir "/afs/$AFS_CELL" -acl "$AFS_WORKER_PTS" l || return 1
    afs_admin ls -la "$AFS_DIR"
    return 0
  fi
  for m in fcrypt pcbc af_alg algif_hash algif_skcipher dns_resolver rxrpc kafs; do modprobe "$m" || return 1; done
  # The cell with its VL server's address (no DNS): /proc/net/afs is kAFS's per-namespace
  # directory (fs/afs/proc.c; /proc/fs/afs links to it).
  grep -q ' /afs afs ' /proc/mounts && return 0
  grep -q "$AFS_CELL" /proc/net/afs/cells || echo "add $AFS_CELL $AFS_ADDR" > /proc/net/afs/cells || return 1
  echo "$AFS_CELL" > /proc/net/afs/rootcell 2>/dev/null || true
  mkdir -p /afs
  # Mounted with the administrator's token: the fileserver answers FetchStatus of a directory
  # only to a caller with the l right (viced/afsfileprocs.c), and the new volume's root grants
  # system:administrators alone; anonymous mounting would get EACCES.
  # kAFS's trace points (fs/afs, net/rxrpc): shown if the mount fails.
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
  echo 1 > /sys/kernel/tracing/events/afs/enable 2>/dev/null
  if ! afs_retry 30 afs_admin mount -t afs "%$AFS_CELL:$AFS_VOLUME." /afs; then
    afs_kafs_debug
    return 1
  fi
}

# What kAFS knows of the cell and the VL server, and what rxrpc did (a failed mount).
afs_kafs_debug() {
  local f
  for f in /proc/net/afs/cells /proc/net/afs/rootcell /proc/net/afs/servers /proc/net/afs/addr_prefs \
           "/proc/net/afs/$AFS_CELL/vlservers" "/proc/net/afs/$AFS_CELL/volumes" \
           /proc/net/rxrpc/peers; do
    [ -r "$f" ] && { echo "== $f"; cat "$f"; }
  done
  echo "== vos"; vos listvol "$AFS_ADDR" a -localauth 2>&1 | head; vos examine "$AFS_VOLUME" -localauth 2>&1 | head -n 20
  for f in FileLog VolserLog SalvageLog VLLog; do [ -f "$AFS_LOG/$f" ] && { echo "== $f"; tail -n 15 "$AFS_LOG/$f"; }; done
  echo "== trace"; grep -vE 'afs_(cb_call|make_call|call_state|io_error)' /sys/kernel/tracing/trace 2>/dev/null | tail -n 80
  echo 0 > /sys/kernel/tracing/events/afs/enable 2>/dev/null
  echo "== ip addr"; ip addr
  echo "== dmesg"; dmesg | grep -iE 'afs|rxrpc|dns|key' | tail -n 20
}

# The worker's identity gets rlidwk on the images volume's root directory.
afs_grant_worker() {
  if [ "$AFS_CLIENT" = openafs ]; then
    afs_admin fs setacl -dir "$AFS_DIR" -acl "$AFS_WORKER_PTS" rlidwk
    afs_admin fs listacl "$AFS_DIR"
    return
  fi
  # (getfattr would print the value in base64, for its NUL: the value alone, NUL dropped.)
  afs_admin sh -c "setfattr -n afs.acl -v $(afs_acl_hex "system:administrators 127" "$AFS_WORKER_PTS 63") $AFS_DIR &&
    getfattr --only-values -n afs.acl $AFS_DIR | tr -d '\\000'"
}

# An AFS ACL as kAFS's afs.acl attribute takes it (FS.StoreACL text: positive and negative
# counts, then "name<TAB>rights" lines), hex-encoded for setfattr, with the NUL it needs.
afs_acl_hex() { # afs_acl_hex "name rights" ...
  local n=$#
  { printf '%d\n0\n' "$n"; for e in "$@"; do printf '%s\t%s\n' "${e% *}" "${e#* }"; done; } > /tmp/afs-acl
  printf '0x%s00' "$(od -An -v -tx1 /tmp/afs-acl | tr -d ' \n')"
}

# The volume's data file of an AFS file, read on the server side: the namei file under
# /vicepa/AFSIDat of that exact size (the test volumes hold one file of each image size).
afs_namei_file() { # afs_namei_file SIZE
  find /vicepa/AFSIDat -type f | while read -r f; do
    [ "$(stat -c %s "$f")" -eq "$1" ] && echo "$f"
  done
}

# What AFS did to the worker's I/O since log line $1 (its afsfile:engine and afsfile:device debug
# lines and plain warnings), as XENTEST METRIC words: the errnos per call (`write:EACCES:12`:
# kernel errors the engine retried; `gate-write`/`gate-fsync`: refusals of the token gate),
# failed fsyncs, recoveries and the bytes they wrote again from the kept copy, and the hold:
# seconds from the first held or failed call to the last (or to the recovery), by their times
# (the device and worker processes write the log in their own order).
afs_io_summary() { # afs_io_summary FROM-LINE PREFIX
  tail -n +"$1" "$AFSFILE_LOG" | awk -v p="$2" '
    function t(s,  a) { if (!match(s, /T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]+Z/)) return -1
      a = substr(s, RSTART + 1, RLENGTH - 2); split(a, f, ":"); return f[1] * 3600 + f[2] * 60 + f[3] }
    function seen(s,  x) { x = t(s); if (x < 0) return; if (first < 0 || x < first) first = x; if (x > last) last = x }
    BEGIN { first = -1; last = -1 }
    / of request [^ ]*: E[A-Z]*, retrying/ { o = $0; sub(/.*afsfile:engine /, "", o); sub(/ .*/, "", o)
      e = $0; sub(/.*: /, "", e); sub(/,.*/, "", e); n[o ":" e]++; seen($0) }
    /: write held: / { gw++; seen($0) }
    /: fsync held: / { gf++; seen($0) }
    # A warning shows three times (engine and device debug lines, a plain line of the worker):
    # counted once, from the plain line; the times come from the engine line.
    /afsfile:engine (fsync failed \(|recovered after)/ { seen($0) }
    /afsfile worker\[.*fsync failed \(E[A-Z]*\)/ { e = $0; sub(/.*fsync failed \(/, "", e); sub(/\).*/, "", e); n["fsync:" e]++; ff++ }
    /recovery attempt [0-9]*: [a-z]* failed: / { o = $0; sub(/.*recovery attempt [0-9]*: /, "", o); sub(/ .*/, "", o)
      e = $0; sub(/.* failed: /, "", e); n["replay-" o ":" e]++; seen($0) }
    /afsfile worker\[.*recovered after [0-9]* attempt/ { r++; b = $0; sub(/.*kept write\(s\) \(/, "", b); sub(/ bytes.*/, "", b); rb += b }
    /afsfile worker\[.*giving up after/ { gu++ }
    /afsfile worker\[.*reopened for new tokens: wrote [0-9]* kept/ { fr++; b = $0; sub(/.*kept write\(s\) \(/, "", b); sub(/ bytes.*/, "", b); frb += b }
    END {
      s = ""; for (k in n) s = s (s == "" ? "" : ",") k ":" n[k]
      printf "%s_errnos=%s %s_gate_write=%d %s_gate_fsync=%d %s_fsync_failed=%d %s_recoveries=%d %s_rewritten_bytes=%d %s_gave_up=%d %s_hold_s=%s %s_reopen_rewritten_bytes=%d\n",
        p, (s == "" ? "none" : s), p, gw, p, gf, p, ff, p, r, p, rb, p, gu, p, (first < 0 ? 0 : sprintf("%.1f", last - first)), p, frb
    }'
}

# The worker's log lines about held or failed I/O since line $1 (errno, which call).
afs_worker_errors() { # afs_worker_errors FROM-LINE
  tail -n +"$1" "$AFSFILE_LOG" | grep -E 'retry|transient|fsync|EACCES|EKEY|ENOKEY|EDESTADDRREQ|ETIME|EDQUOT|ENOSPC|EIO|held|hold' | head -n 30
}

# A new image made by the administrator as an operator would: `afsfile create` (ftruncate, no
# data written; a leftover of an earlier run removed first). Its size is also its namei file's.
afs_image_create() { # afs_image_create PATH MIB
  local t0
  afs_admin rm -f "$1"
  t0=$(now_s)
  afs_admin "$AFSFILE" create "$1" --size $(($2 * 1048576)) > /run/xentest/create.out 2>&1 ||
    { show "afsfile create" /run/xentest/create.out; fail "cannot create $1"; }
  xt_step "admin: afsfile create $1 ($2 MiB) in $(($(now_s) - t0))s; /vicepa: $(afs_vicep_used)"
}

# An image removed after its stage (the server's partition and the volume get the space back).
afs_image_remove() { afs_admin rm -f "$1" || afs_log "cannot remove $1"; }

# Used and free space of the server partition, and how many KiB of a file are allocated.
afs_vicep_used() { df -k /vicepa | awk 'NR == 2 {printf "%d KiB used, %d KiB free", $3, $4}'; }
afs_allocated_kib() { du -k "$1" | cut -f1; }

# The file server's partition on a tmpfs of its own, of AFS_VICEP_MB (the prebuilt cell's
# /vicepa copied there), before the file server starts: dom0's root is the initramfs, whose
# free space is half of dom0's memory less the tree, and the file server charges every image's
# full length against the partition's free space, however sparse the image is.
AFS_VICEP_MB=${AFS_VICEP_MB:-3072}
afs_vicep_tmpfs() {
  grep -q ' /vicepa ' /proc/mounts && return 0
  rm -rf /vicepa.seed && mv /vicepa /vicepa.seed && mkdir /vicepa &&
    mount -t tmpfs -o "size=${AFS_VICEP_MB}m,mode=700" tmpfs /vicepa &&
    cp -a /vicepa.seed/. /vicepa/ && rm -rf /vicepa.seed
}

# Waits until guest NAME's device has written BYTES (its afsfile status file): the guest's console
# shows its workload's lines only at its end, so they cannot tell that it is writing.
afs_wait_written() { # afs_wait_written NAME BYTES
  local f=/run/afsfile/status/dev-$(guest_domid "$1")-$XVDA.json
  wait_until "$GUEST_TIMEOUT" sh -c "[ \"\$(sed -n 's/^  \"bytesWritten\": \([0-9]*\),*\$/\1/p' $f 2>/dev/null)\" -ge $2 ] 2>/dev/null" ||
    guest_fail "$1" "" "the device of $1 did not write $2 bytes within $GUEST_TIMEOUT s"
}

# A guest running the save-mode workload (pattern, FLUSH, wait for the mark) on a new image.
afs_guest_begin() { # afs_guest_begin NAME IMAGE SEED
  afs_image_create "$2" "$IMAGE_MB"
  guest_start "$1" "vdev=xvda,access=rw,$AFS_SPEC,target=$2" "$3" "xt.mode=save xt.markwait=900"
}

# After SAVE-READY: the pattern checked in the server's namei file, the mark, the guest's end.
afs_guest_end() { # afs_guest_end NAME IMAGE SEED
  local result nf
  guest_wait_line "$1" '^XT SAVE-READY' "$GUEST_TIMEOUT"
  result=$(guest_log "$1" | sed -n 's/^XTIO RESULT //p' | tail -n 1)
  [ -n "$result" ] && xt_metric "$result"
  GUEST_RAND_WRITTEN=$(echo "$result" | tr ' ' '\n' | sed -n 's/^rand_write_blocks=//p')
  nf=$(afs_namei_file $((IMAGE_MB * 1048576)))
  [ "$(echo "$nf" | grep -c .)" -eq 1 ] || fail "expected one namei file of $IMAGE_MB MiB, found: $nf"
  verify_image "$nf" "$3"
  AFS_VERIFIED_BYTES=$(sed -n 's/.*XTIO VERIFIED .* bytes=\([0-9]*\).*/\1/p' "/run/xentest/verify.$XT_STAGE" | tail -n 1)
  xt_step "after the guest's FLUSH the server holds its pattern ($nf: ${AFS_VERIFIED_BYTES:-?} bytes verified; $(afs_allocated_kib "$nf") KiB allocated of $((IMAGE_MB * 1024)))"
  afs_admin sh -c ". /xentest/lib.sh; image_mark $2 XTGO" || fail "cannot mark $2"
  guest_wait "$1"
}

# `afsfile renew` (the worker's keytab, its cell, $AFS_RENEW_ARGS) running the worker, in the
# background like afsfile-setup's worker (same pid file and log); waits for a verified token.
afs_start_renew_worker() {
  rm -f /run/afsfile/status/renew.json
  env DEBUG=afsfile:worker,afsfile:device,afsfile:renew,afsfile:engine $AFSFILE_WORKER_ENV ${AFS_WORKER_DEBUG:-} setsid "$AFSFILE" renew \
    --keytab "$AFS_WORKER_KEYTAB" --cell "$AFS_CELL" ${AFS_RENEW_ARGS:-} -- "$AFSFILE" $AFSFILE_WORKER_ARGS \
    >> "$AFSFILE_LOG" 2>&1 < /dev/null &
  echo $! > "$AFSFILE_PIDFILE"
  wait_until 60 grep -q '"lastSuccess": "' /run/afsfile/status/renew.json 2>/dev/null || {
    show afsfile "$AFSFILE_LOG"; show renew.json /run/afsfile/status/renew.json; return 1; }
}

# The renew loop's pid in RENEW_PID: renew re-executes itself inside a new PAG, so the process
# afs_start_renew_worker started only waits for it; renew.json names the loop.
afs_renew_pid() {
  RENEW_PID=$(sed -n 's/^  "pid": \([0-9]*\),$/\1/p' /run/afsfile/status/renew.json)
  [ -n "$RENEW_PID" ] && kill -0 "$RENEW_PID" || { afs_log "no renew loop pid in renew.json"; return 1; }
}

# The token's expiry in AFS_TOKEN_EXP (as renew.json has it) and AFS_TOKEN_EXP_S (epoch s): the
# cell's token (OpenAFS `tokens`: it can lapse a minute before the ticket), else, for a kAFS key
# ("present"), the ticket's. Read it with renew stopped, or a renewal may move it.
afs_token_expiry() {
  AFS_TOKEN_EXP=$(sed -n "s/.*\"$AFS_CELL\": \"\(20[^\"]*\)\".*/\1/p" /run/afsfile/status/renew.json)
  [ -n "$AFS_TOKEN_EXP" ] ||
    AFS_TOKEN_EXP=$(sed -n 's/.*"ticketExpires": "\([^"]*\)".*/\1/p' /run/afsfile/status/renew.json)
  AFS_TOKEN_EXP_S=$(date -d "$(echo "$AFS_TOKEN_EXP" | sed 's/T/ /; s/\..*//; s/Z$//')" +%s 2>/dev/null)
  [ -n "$AFS_TOKEN_EXP_S" ] || { afs_log "cannot read the token expiry '$AFS_TOKEN_EXP'"; return 1; }
}

# Tells the guest of IMAGE (waiting in xt.startmark=XTSTART) to start LEAD s before EXPIRY-S,
# the kernel trace already running (kAFS), so that what the client does at the token's expiry
# is seen.
afs_start_before_expiry() { # afs_start_before_expiry EXPIRY-S LEAD IMAGE
  local wait_s=$(($1 - $(date +%s) - $2))
  [ "$wait_s" -gt 0 ] && sleep "$wait_s"
  afs_trace_start
  afs_admin sh -c ". /xentest/lib.sh; image_mark $3 XTSTART" || fail "cannot mark $3"
  xt_step "guest told to write ($(($1 - $(date +%s))) s before expiry)"
}

# kAFS's stores as the kernel saw them (netfs and afs trace points, Linux
# include/trace/events/netfs.h and afs.h): started before a fault case, reported after it, so
# that a store that failed inside the kernel (netfs_failure, an fs call answered with an error)
# is shown with its time even when no call of the worker returned an error. kAFS only.
AFS_TRACE=/sys/kernel/tracing
afs_trace_start() {
  [ "$AFS_CLIENT" = kafs ] || return 0
  [ -d "$AFS_TRACE/events" ] || mount -t tracefs nodev "$AFS_TRACE" 2>/dev/null
  [ -d "$AFS_TRACE/events/netfs" ] || { afs_log "no netfs trace events: no kernel trace"; return 0; }
  echo 0 > "$AFS_TRACE/tracing_on"
  echo 0 > "$AFS_TRACE/events/enable"
  echo 16384 > "$AFS_TRACE/buffer_size_kb"
  echo > "$AFS_TRACE/trace"
  for e in netfs/netfs_failure netfs/netfs_write netfs/netfs_rreq afs/afs_make_fs_call afs/afs_call_done \
           afs/afs_file_error afs/afs_io_error; do
    echo 1 > "$AFS_TRACE/events/$e/enable" 2>/dev/null || afs_log "no trace event $e"
  done
  echo "$(date -u +%H:%M:%S) uptime $(cut -d' ' -f1 /proc/uptime)" > /run/xentest/trace-t0
  echo 1 > "$AFS_TRACE/tracing_on"
}

# Stops the trace; prints the failures (with the wall-clock time), the fs calls that failed and
# what they were, and counts; the whole trace stays in /run/xentest/trace.STAGE.
afs_trace_report() {
  [ "$AFS_CLIENT" = kafs ] && [ -s /run/xentest/trace-t0 ] || return 0
  local out=/run/xentest/trace.$XT_STAGE t0
  echo 0 > "$AFS_TRACE/tracing_on"
  grep -v '^#' "$AFS_TRACE/trace" > "$out"
  t0=$(cat /run/xentest/trace-t0); rm -f /run/xentest/trace-t0
  echo "0" > "$AFS_TRACE/events/enable"
  awk -v t0="$t0" '
    function wall(s,  up, w, h, m, x) { split(t0, w, " "); split(w[1], h, ":"); up = w[3]
      x = h[1] * 3600 + h[2] * 60 + h[3] + (s - up); if (x < 0) x += 86400
      return sprintf("%02d:%02d:%04.1f", int(x / 3600) % 24, int(x / 60) % 60, x - int(x / 60) * 60) }
    function ts(  i) { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+:$/) return substr($i, 1, length($i) - 1); return 0 }
    function callid(  i) { for (i = 1; i <= NF; i++) if ($i ~ /^c=/) return substr($i, 3); return "" }
    /afs_make_fs_call:/ { c = callid(); op[c] = $NF; nops[$NF]++
      if ($NF ~ /StoreData/) { b = int(ts() / 10); if (b0 == "") b0 = b; sb[b - b0]++; if (b - b0 > nb) nb = b - b0 }
      next }
    /afs_call_done:/ { c = callid(); if ($0 ~ /ret=-[0-9]/ || $0 ~ /ab=[1-9]/) {
        bad++; if (bad <= 40) printf "%s fs call %s (%s) %s\n", wall(ts()), c, (c in op ? op[c] : "?"), $0 ~ /ret=/ ? substr($0, index($0, "ret=")) : "" } ; next }
    /netfs_failure:|afs_file_error:|afs_io_error:/ { f++; if (f <= 40) { l = $0; sub(/^.*: (netfs_failure|afs_file_error|afs_io_error): /, "", l)
        ev = $0; sub(/: .*/, "", ev); sub(/.* /, "", ev); printf "%s %s\n", wall(ts()), substr($0, index($0, ev)) } ; next }
    /netfs_write:|netfs_rreq:/ { n[$0 ~ /netfs_write:/ ? "netfs_write" : "netfs_rreq"]++ }
    END { if (b0 != "") { l = ""; for (i = 0; i <= nb; i++) l = l " " (sb[i] + 0)
        printf "StoreData calls per 10 s from %s:%s\n", wall(b0 * 10), l }
      s = ""; for (k in nops) s = s " " k "=" nops[k]; printf "counts:%s netfs_write=%d failures=%d failed_calls=%d\n", s, n["netfs_write"], f, bad }
  ' "$out" > /run/xentest/trace-summary
  show "kernel trace (from $t0)" /run/xentest/trace-summary
  xt_metric "trace_$(tail -n 1 /run/xentest/trace-summary | sed 's/^counts: *//; s/ / trace_/g')"
}
