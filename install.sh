#!/bin/sh
# Installs afsfile on a Xen dom0 (run as root after `npm run build`):
#   /usr/lib/xen/bin/afsfile                  the executable
#   /usr/sbin/afsfile -> afsfile              on root's PATH (afsfile check, status, ...)
#   /etc/xen/scripts/block-afsfile -> afsfile the hotplug script libxl runs
#   /etc/systemd/system/afsfile.service       afsfile renew -- afsfile worker
#   /usr/share/man/man8/afsfile.8, /usr/share/bash-completion/completions/afsfile
#                                             made from the option table (build.mjs)
#   /etc/xen/afsfile.conf                     a commented config (kept if it exists)
# DESTDIR installs into a staging root; PREFIX (default /usr) moves lib/xen/bin.
# --uninstall stops and disables the service, then removes exactly what install put there (a
# config you edited is kept).
# Idempotent: running it twice changes nothing the second time.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr}
BIN="$PREFIX/lib/xen/bin/afsfile"
LINK=/etc/xen/scripts/block-afsfile
SBIN_LINK=/usr/sbin/afsfile
UNIT=/etc/systemd/system/afsfile.service
MAN=$PREFIX/share/man/man8/afsfile.8
COMPLETION=$PREFIX/share/bash-completion/completions/afsfile
CONF=/etc/xen/afsfile.conf
SRC=${AFSFILE_BIN:-$here/dist/afsfile}

# The commented config, every key with its default, made from the option table: the copy
# build.mjs wrote next to the executable (dist/afsfile.conf), else the executable prints it.
conf_template() {
  if [ -f "$here/dist/afsfile.conf" ]; then cat "$here/dist/afsfile.conf"; else "$1" help config; fi
}

# The hardening keeps what a dom0 block backend needs: /dev/xen (evtchn, gntdev, gntalloc,
# privcmd, xenbus), images anywhere (AFS, /srv, /var/lib/xen), V8's JIT, io_uring, the keyring
# syscalls of the PAG, and Kerberos over the network. Each setting says why it is safe here.
unit_text() {
  cat <<UNIT
[Unit]
Description=afsfile: Xen block backend for disk images in AFS
Documentation=man:afsfile(8) file://$PREFIX/share/doc/afsfile/README.md
# XenStore must answer first. Debian 12 starts it with the \`xen\` init script (xen.service);
# upstream Xen installs xenstored.service, xencommons.service and proc-xen.mount. After= on a
# unit that does not exist is ignored, so every name is listed.
After=xen.service xenstored.service xencommons.service proc-xen.mount openafs-client.service network-online.target
Wants=network-online.target
# Guests started at boot need the backend to attach their disks.
Before=xendomains.service

[Service]
# Ready when the worker watches XenStore; the worker is renew's child and tells systemd with
# systemd-notify (a separate process), so any process of the unit may notify.
Type=notify
NotifyAccess=all
ExecStart=$BIN renew -- $BIN worker
ExecReload=kill -HUP \$MAINPID
Restart=on-failure
RestartSec=2
# 78 (EX_CONFIG): the configuration is wrong; 2: the command line is. A restart cannot fix
# either; \`afsfile check\` says what to change.
RestartPreventExitStatus=2 78
# SIGTERM to renew alone, which passes it to the worker once; devices stay connected.
KillMode=mixed
TimeoutStartSec=90
TimeoutStopSec=30
# Run dir (status files, the credential cache): kept across restarts, so a restarted worker
# finds the device processes that kept serving; not readable by other users.
RuntimeDirectory=afsfile
RuntimeDirectoryPreserve=yes
RuntimeDirectoryMode=0750
UMask=0027

# Hardening.
# Nothing it runs (kinit, aklog, pagsh, keyctl) is set-uid.
NoNewPrivileges=yes
# /usr, /boot and /etc read-only; images are never there (strict would forbid writing images
# wherever the administrator keeps them).
ProtectSystem=full
# Images never live in /tmp (cleaned at boot); its own temp files are private.
PrivateTmp=yes
# It never changes sysctls, loads modules, reads the kernel log, edits cgroups or the hostname.
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectHostname=yes
ProtectClock=yes
# Its processes are all root: hidepid hides only other users' (not ProcSubset=pid, which would
# hide /proc/fs/openafs, where OpenAFS's token and PAG calls go).
ProtectProc=invisible
# Capabilities a block backend never uses (root's file access to images, the /dev/xen ioctls and
# OpenAFS's PAG stay: CAP_DAC_*, CAP_FOWNER, CAP_SETGID, CAP_SYS_ADMIN are kept).
CapabilityBoundingSet=~CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE CAP_NET_BROADCAST CAP_SYS_PTRACE CAP_SYS_RAWIO CAP_SYS_BOOT CAP_SYS_TIME CAP_WAKE_ALARM CAP_MKNOD CAP_AUDIT_CONTROL CAP_AUDIT_READ CAP_AUDIT_WRITE CAP_MAC_ADMIN CAP_MAC_OVERRIDE CAP_LINUX_IMMUTABLE CAP_SYS_PACCT CAP_SYS_TTY_CONFIG CAP_BLOCK_SUSPEND CAP_BPF CAP_PERFMON CAP_SYSLOG CAP_SYS_MODULE CAP_LEASE
# The device cgroup: only the Xen devices it uses (and the standard pseudo devices). Not
# PrivateDevices=, which would hide /dev/xen.
DevicePolicy=closed
DeviceAllow=/dev/xen/evtchn rw
DeviceAllow=/dev/xen/gntdev rw
DeviceAllow=/dev/xen/gntalloc rw
DeviceAllow=/dev/xen/privcmd rw
DeviceAllow=/dev/xen/xenbus rw
# unix (xenstored), inet (KDC, AFS file servers through the kernel), netlink (glibc's
# interface lookups for Kerberos).
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
# No namespaces: a PAG is a session keyring or an OpenAFS group, not a namespace.
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
# @system-service includes @aio (io_uring_setup/enter/register), @keyring (keyctl, add_key:
# the PAG), @setuid (setgroups: OpenAFS's setpag), ioctl (/dev/xen, OpenAFS's afs_ioctl).
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
# Its own session keyring, made by renew (keyctl session / pagsh): the PAG stays reachable to
# its children, and to no other service.
KeyringMode=private
# Deliberately not set: MemoryDenyWriteExecute (V8's JIT writes code), PrivateDevices (hides
# /dev/xen), ProtectHome (images may be under /home), PrivateNetwork (Kerberos, AFS),
# IPAddressDeny (AFS file servers and KDCs are anywhere).

[Install]
WantedBy=multi-user.target
UNIT
}

# Live systemd only when installing into / on a machine that runs it.
systemd_live() {
  [ -z "$DESTDIR" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]
}

if [ "${1:-}" = "--uninstall" ]; then
  if systemd_live; then
    systemctl disable --now afsfile.service || true
  elif command -v systemctl >/dev/null 2>&1 && [ -n "$DESTDIR" ]; then
    systemctl --root="$DESTDIR" --quiet disable afsfile.service 2>/dev/null || true
  fi
  # Whatever enabled it: no dangling [Install] link stays behind.
  rm -f "$DESTDIR/etc/systemd/system/multi-user.target.wants/afsfile.service"
  # The config is removed only if it is still the untouched template.
  if [ -f "$DESTDIR$CONF" ] && [ -x "$DESTDIR$BIN" ] && conf_template "$DESTDIR$BIN" | cmp -s - "$DESTDIR$CONF"; then rm -f "$DESTDIR$CONF"; fi
  [ "$(readlink "$DESTDIR$SBIN_LINK" 2>/dev/null)" = "$BIN" ] && rm -f "$DESTDIR$SBIN_LINK"
  rm -f "$DESTDIR$LINK" "$DESTDIR$UNIT" "$DESTDIR$BIN" "$DESTDIR$MAN" "$DESTDIR$COMPLETION"
  if systemd_live; then systemctl daemon-reload || true; fi
  echo "afsfile uninstalled from ${DESTDIR:-/}"
  exit 0
fi
[ $# -eq 0 ] || { echo "usage: install.sh [--uninstall]" >&2; exit 2; }
[ -x "$SRC" ] || { echo "install.sh: $SRC not found: run npm run build first" >&2; exit 1; }

install -d "$DESTDIR$(dirname "$BIN")" "$DESTDIR/etc/xen/scripts" "$DESTDIR/etc/systemd/system" "$DESTDIR/usr/sbin"
if ! cmp -s "$SRC" "$DESTDIR$BIN"; then install -m 0755 "$SRC" "$DESTDIR$BIN"; fi
ln -sfn "$BIN" "$DESTDIR$LINK"
ln -sfn "$BIN" "$DESTDIR$SBIN_LINK"
unit_text > "$DESTDIR$UNIT.tmp" && mv "$DESTDIR$UNIT.tmp" "$DESTDIR$UNIT"
[ -e "$DESTDIR$CONF" ] || conf_template "$SRC" > "$DESTDIR$CONF"
# The man page and completion build.mjs wrote beside the executable, else made by it now.
generated() { # NAME TOPIC DEST
  install -d "$DESTDIR$(dirname "$3")"
  if [ -f "$here/dist/$1" ]; then install -m 0644 "$here/dist/$1" "$DESTDIR$3"; else "$SRC" help "$2" > "$DESTDIR$3"; fi
}
generated afsfile.8 man "$MAN"
generated afsfile.bash-completion completion "$COMPLETION"
if systemd_live; then systemctl daemon-reload || true; fi
echo "afsfile installed into ${DESTDIR:-/}"
