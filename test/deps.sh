#!/usr/bin/env bash
# The Debian packages the build and the unit tests need, in one place (.ci/run and the README's
# test line call this; `npm test` runs `test/deps.sh --check` first).
#
#   test/deps.sh           install what is missing (apt-get; re-runs itself with sudo if needed)
#   test/deps.sh --check   exit 0 when everything is there, else exit 1 with ONE line naming the
#                          missing programs and the command that installs them
#
# Each package is found by what the tests run from it (a program on PATH or in /usr/sbin, or a
# file). AFSFILE_DEPS_ROOT prefixes the fixed paths (a test points it at an empty dir to hide
# them); AFSFILE_TEST_XENSTORED names the xenstored binary, as test/helpers/xenstored.ts reads it.
set -euo pipefail

# package           probes (a name is a program; a path is a file; xen:NAME is /usr/lib/xen-*/bin/NAME)
TABLE='
gcc                 gcc
libc6-dev           /usr/include/stdio.h
linux-libc-dev      /usr/include/linux/types.h
libxen-dev          /usr/include/xen/io/blkif.h
binutils            strip ld
util-linux          setpriv unshare
strace              strace
xen-utils-4.17      xen:xenstored
xenstore-utils      xenstore-read
krb5-kdc            krb5kdc kdb5_util
krb5-admin-server   kadmin.local
krb5-user           kinit klist
keyutils            keyctl
openafs-client      pagsh
openafs-krb5        aklog
systemd             systemd-notify systemd-analyze systemctl
python3             /usr/bin/python3
libfuse3-dev        /usr/include/fuse3/fuse.h
fuse3               fusermount3
pkg-config          pkg-config
'
# Why each: gcc, libc6-dev, binutils (strip): the addon and the executable (build.mjs);
# linux-libc-dev: the UAPI checks; libxen-dev: Xen's io/blkif.h for the blkif ABI check;
# xen-utils-4.17, xenstore-utils: the real xenstored the worker and hotplug tests talk to;
# util-linux: setpriv/unshare for the hotplug and namespace tests; strace: syscall assertions;
# krb5-*, keyutils, openafs-client (pagsh), openafs-krb5 (aklog): the renew loop's real peers;
# systemd: systemd-notify (the worker's readiness), systemd-analyze (the unit's offline
# checks) and systemctl (install.sh's enable/disable, offline with --root); python3: the test's NOTIFY_SOCKET receiver (a unix datagram socket, which Node
# cannot open); libfuse3-dev, fuse3, pkg-config: test/faultfs, the fault-injecting FUSE file
# system of the proofs (test/proofs/faults.test.ts).

root=${AFSFILE_DEPS_ROOT:-}

have() { # probe
  local p=$1
  case $p in
    xen:*)
      if [ -n "${AFSFILE_TEST_XENSTORED:-}" ]; then [ -x "$AFSFILE_TEST_XENSTORED" ]; return; fi
      compgen -G "$root/usr/lib/xen-*/bin/${p#xen:}" >/dev/null ;;
    /*) [ -e "$root$p" ] ;;
    *)
      local d IFS=:
      for d in $PATH "$root/usr/local/sbin" "$root/usr/sbin" "$root/sbin"; do
        [ -n "$d" ] && [ -x "$d/$p" ] && return 0
      done
      return 1 ;;
  esac
}

missing_pkgs=()
missing_what=()
while read -r pkg probes; do
  [ -n "$pkg" ] || continue
  for p in $probes; do
    if ! have "$p"; then
      missing_pkgs+=("$pkg")
      missing_what+=("${p#xen:} ($pkg)")
      break
    fi
  done
done <<<"$TABLE"

if [ "${1:-}" = --check ]; then
  ((${#missing_pkgs[@]})) || exit 0
  list=$(printf '%s, ' "${missing_what[@]}")
  printf 'afsfile tests: missing %s; install them with: test/deps.sh (apt-get install --no-install-recommends %s)\n' \
    "${list%, }" "${missing_pkgs[*]}" >&2
  exit 1
fi
[ $# -eq 0 ] || { echo "usage: test/deps.sh [--check]" >&2; exit 2; }

((${#missing_pkgs[@]})) || { echo "test/deps.sh: every package the tests need is installed"; exit 0; }
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "test/deps.sh: run as root to install ${missing_pkgs[*]}" >&2; exit 1; }
  exec sudo -- "$0" "$@"
fi

export DEBIAN_FRONTEND=noninteractive
# The packages must not start their daemons (krb5kdc, kadmind, afsd): the tests start their own.
# A policy-rc.d made here is removed again, so the host's daemons behave as before afterwards.
made_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1
fi
trap '[ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d' EXIT
echo "test/deps.sh: installing ${missing_pkgs[*]}"
apt-get update -qq
# --no-install-recommends keeps openafs-client from pulling openafs-modules-dkms (a kernel
# module build that cannot succeed in a container and holds dpkg for minutes).
apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confdef \
  -o Dpkg::Options::=--force-confold "${missing_pkgs[@]}" >/dev/null
"$0" --check
