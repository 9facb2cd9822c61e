#!/bin/bash
# Prepare everything the Xen end-to-end test boots, for each Xen version asked
# for: host packages, the platform (hypervisor, kernel, and on 4.20 a Debian 13
# root: downloaded and made once into the shared cache, host/platform.sh), the
# static guest I/O tool, and this clone's dom0 and domU initramfs images
# (rebuilt every time, a few seconds). Then run: node test/xen/run.mjs
#
# Usage: prepare.sh [--xen 4.17,4.20|all]     (default 4.17)
# Output: test/xen/.build/XEN/boot/{xen.elf,vmlinuz -> cache, dom0.cpio, domu.cpio.gz}
#         (per clone: two clones can prepare and boot at once)
# Env: see host/build-dom0.sh (AFSFILE_BIN, AFSFILE_INSTALL_SH, AFSFILE_WORKER_ARGS, AFSFILE_WORKER_ENV,
#      AFSFILE_INSTALL_ARGS, XEN_TEST_DOM0_COMPRESS), host/platform.sh (XEN_TEST_KERNEL_PKG),
#      host/cache.sh (XEN_TEST_CACHE: the shared cache), XEN_TEST_BUILD (default test/xen/.build).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ALL_XEN="4.17 4.20"
xens=4.17
while [ $# -gt 0 ]; do
  case $1 in
    --xen) xens=$2; shift 2 ;;
    --xen=*) xens=${1#--xen=}; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "prepare: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$xens" = all ] && xens=$ALL_XEN
xens=${xens//,/ }
BUILD_ROOT=${XEN_TEST_BUILD:-$HERE/.build}
export HERE REPO
trap 'echo "prepare: FAILED (line $LINENO)" >&2' ERR

t0=$SECONDS
"$HERE/host/packages.sh"
mkdir -p "$BUILD_ROOT/tools"
TOOLS=$BUILD_ROOT/tools
gcc -O2 -Wall -static -pthread -o "$TOOLS/xtio" "$HERE/tools/xtio.c"
"$HERE/tools/build-afslock.sh" "$TOOLS/afslock"
export TOOLS
for xen in $xens; do
  case " $ALL_XEN " in *" $xen "*) ;; *) echo "prepare: unknown Xen version $xen (known: $ALL_XEN)" >&2; exit 2 ;; esac
  t1=$SECONDS
  PLATFORM=$("$HERE/host/platform.sh" "$xen")
  BUILD=$BUILD_ROOT/$xen
  export XEN=$xen PLATFORM BUILD
  mkdir -p "$BUILD/boot"
  # A failed prepare must not leave an older image for run.mjs to boot.
  rm -f "$BUILD"/boot/dom0.cpio "$BUILD"/boot/dom0.cpio.gz "$BUILD"/boot/domu.cpio.gz
  for f in xen.elf vmlinuz kernel-version; do ln -sfn "$PLATFORM/$f" "$BUILD/boot/$f"; done
  "$HERE/host/build-domu.sh"
  "$HERE/host/build-dom0.sh"
  echo "prepare: Xen $xen ready in $((SECONDS - t1)) s (platform $PLATFORM)"
done
echo "prepare: done in $((SECONDS - t0)) s"
