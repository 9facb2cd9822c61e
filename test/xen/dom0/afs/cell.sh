# The test AFS cell, shared by its prebuild on the host (make-cell.sh, in a chroot of the dom0
# tree inside namespaces) and by dom0 (the afs-* stages). Source this file (busybox sh).
AFS_CELL=afstest.local
AFS_REALM=AFSTEST.LOCAL
# OpenAFS servers refuse loopback addresses (rx_getAllAddr skips 127/8): an address of their own.
AFS_ADDR=10.99.0.1
AFS_ADMIN=admin                     # in UserList and system:administrators
AFS_WORKER_PRINC=afsfile/dom0       # the worker's identity: pts name afsfile.dom0
AFS_WORKER_PTS=afsfile.dom0
AFS_ADMIN_KEYTAB=/root/afs-admin.keytab
AFS_WORKER_KEYTAB=/etc/afsfile/afsfile.keytab
AFS_VOLUME=images                   # the volume of the guests' images, no quota at first
AFS_LOG=/var/log/openafs
AFS_PIDS=/run/afs-pids
# What the prebuild leaves and dom0 unpacks (paths in the dom0 tree).
AFS_STATE="etc/krb5.conf etc/krb5kdc var/lib/krb5kdc etc/openafs var/lib/openafs vicepa root/afs-admin.keytab etc/afsfile/afsfile.keytab"

afs_log() { echo "  [afs] $*"; }

# Start one daemon in the background, pid in $AFS_PIDS/NAME.
afs_daemon() {
  local name=$1; shift
  local pid
  pid=$(cat "$AFS_PIDS/$name" 2>/dev/null) || true
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && return 0 # running (a stage run again)
  mkdir -p "$AFS_PIDS" "$AFS_LOG"
  "$@" > "$AFS_LOG/$name.out" 2>&1 < /dev/null &
  echo $! > "$AFS_PIDS/$name"
}

afs_stop() { # afs_stop NAME [SIGNAL]: stop a daemon started by afs_daemon, wait for it
  local pid n=0
  pid=$(cat "$AFS_PIDS/$1" 2>/dev/null) || return 0
  kill -"${2:-TERM}" "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done
  rm -f "$AFS_PIDS/$1"
}

afs_retry() { # afs_retry SECONDS CMD...: until CMD succeeds (its output kept in /tmp/afs-retry.out)
  local end=$(($(cut -d. -f1 /proc/uptime) + $1)); shift
  until "$@" > /tmp/afs-retry.out 2>&1; do
    [ "$(cut -d. -f1 /proc/uptime)" -ge "$end" ] && { cat /tmp/afs-retry.out; return 1; }
    sleep 0.5
  done
}

afs_address() { # afs_address [lo]: the servers' address, on a dummy device (or on lo)
  ip link set lo up
  ip addr show | grep -q "inet $AFS_ADDR/" && return 0
  if [ "${1:-}" != lo ] && { ip link show afs0 > /dev/null 2>&1 || { modprobe dummy && ip link add afs0 type dummy; }; }; then
    ip link set afs0 up && ip addr add "$AFS_ADDR/32" dev afs0 && return 0
  fi
  ip addr add "$AFS_ADDR/32" dev lo
}

afs_start_kdc() { afs_daemon krb5kdc /usr/sbin/krb5kdc -n; }

# ptserver and vlserver, then wait for their quorum: a fileserver started earlier
# cannot register its address and loses half a minute.
afs_start_db() {
  afs_daemon ptserver /usr/lib/openafs/ptserver
  afs_daemon vlserver /usr/lib/openafs/vlserver
  afs_retry 90 pts listentries -localauth || { afs_log "ptserver has no quorum"; return 1; }
  afs_retry 90 vos listvldb -localauth || { afs_log "vlserver has no quorum"; return 1; }
}

afs_start_fs() {
  afs_daemon fileserver /usr/lib/openafs/fileserver -p 8 -nojumbo
  afs_daemon volserver /usr/lib/openafs/volserver
  afs_retry 90 vos listpart "$AFS_ADDR" -localauth || { afs_log "no partition served"; return 1; }
}

