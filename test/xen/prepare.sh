#!/bin/bash
# Prepare everything the Xen end-to-end test boots: host packages, the Xen
# hypervisor and Linux kernel (downloaded once into test/xen/.cache), the static
# guest I/O tool, and the dom0 and domU initramfs images (rebuilt every time,
# a few seconds). Then run: node test/xen/run.mjs
#
# Env: see host/build-dom0.sh (AFSFILE_BIN, AFSFILE_INSTALL_SH, AFSFILE_WORKER_ARGS, AFSFILE_WORKER_ENV,
#      AFSFILE_INSTALL_ARGS, XEN_TEST_DOM0_COMPRESS) and host/fetch.sh.
#      XEN_TEST_CACHE overrides the cache directory.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${XEN_TEST_CACHE:-$HERE/.cache}
export HERE REPO CACHE
mkdir -p "$CACHE/tools" "$CACHE/boot"
trap 'echo "prepare: FAILED (line $LINENO)" >&2' ERR
# A failed prepare must not leave an older image for run.mjs to boot.
rm -f "$CACHE"/boot/dom0.cpio "$CACHE"/boot/dom0.cpio.gz "$CACHE"/boot/domu.cpio.gz

t0=$SECONDS
"$HERE/host/packages.sh"
"$HERE/host/fetch.sh"
gcc -O2 -Wall -static -pthread -o "$CACHE/tools/xtio" "$HERE/tools/xtio.c"
"$HERE/host/build-domu.sh"
"$HERE/host/build-dom0.sh"
echo "prepare: done in $((SECONDS - t0)) s"
