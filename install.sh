#!/bin/sh
# Installs afsfile on a Xen dom0 (run as root after `npm run build`):
#   /usr/lib/xen/bin/afsfile                  the executable
#   /etc/xen/scripts/block-afsfile -> afsfile the hotplug script libxl runs
#   /etc/systemd/system/afsfile.service       afsfile renew -- afsfile worker
#   /etc/xen/afsfile.conf                     a commented config (kept if it exists)
# DESTDIR installs into a staging root; PREFIX (default /usr) moves lib/xen/bin.
# --uninstall removes exactly what install put there (a config you edited is kept).
# Idempotent: running it twice changes nothing the second time.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr}
BIN="$PREFIX/lib/xen/bin/afsfile"
LINK=/etc/xen/scripts/block-afsfile
UNIT=/etc/systemd/system/afsfile.service
CONF=/etc/xen/afsfile.conf
SRC=${AFSFILE_BIN:-$here/dist/afsfile}

# The commented config, every key with its default, made by the executable from its option table.
conf_template() {
  "$1" help config
}

unit_text() {
  cat <<UNIT
[Unit]
Description=afsfile: Xen block backend for disk images in AFS
Documentation=file://$PREFIX/share/doc/afsfile/README.md
After=xenstored.service proc-xen.mount openafs-client.service network-online.target
Wants=network-online.target
Before=xendomains.service

[Service]
Type=simple
ExecStart=$BIN renew -- $BIN worker
ExecReload=/bin/kill -HUP \$MAINPID
Restart=on-failure
RestartSec=2
KillMode=mixed
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
UNIT
}

if [ "${1:-}" = "--uninstall" ]; then
  # The config is removed only if it is still the untouched template.
  if [ -f "$DESTDIR$CONF" ] && [ -x "$DESTDIR$BIN" ] && conf_template "$DESTDIR$BIN" | cmp -s - "$DESTDIR$CONF"; then rm -f "$DESTDIR$CONF"; fi
  rm -f "$DESTDIR$LINK" "$DESTDIR$UNIT" "$DESTDIR$BIN"
  echo "afsfile uninstalled from ${DESTDIR:-/}"
  exit 0
fi
[ $# -eq 0 ] || { echo "usage: install.sh [--uninstall]" >&2; exit 2; }
[ -x "$SRC" ] || { echo "install.sh: $SRC not found: run npm run build first" >&2; exit 1; }

install -d "$DESTDIR$(dirname "$BIN")" "$DESTDIR/etc/xen/scripts" "$DESTDIR/etc/systemd/system"
if ! cmp -s "$SRC" "$DESTDIR$BIN"; then install -m 0755 "$SRC" "$DESTDIR$BIN"; fi
ln -sfn "$BIN" "$DESTDIR$LINK"
unit_text > "$DESTDIR$UNIT.tmp" && mv "$DESTDIR$UNIT.tmp" "$DESTDIR$UNIT"
[ -e "$DESTDIR$CONF" ] || conf_template "$SRC" > "$DESTDIR$CONF"
if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
echo "afsfile installed into ${DESTDIR:-/}"
