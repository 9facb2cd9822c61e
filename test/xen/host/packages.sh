#!/bin/bash
# Install the Debian packages the Xen harness needs on the host, if any is missing.
# Runs `apt-get update` only when something has to be installed.
set -euo pipefail

PACKAGES=(
  qemu-system-x86   # the emulated machine (TCG)
  busybox-static    # userland of both initramfs images
  cpio kmod         # packing the images, resolving module dependencies
  xen-utils-4.17    # xl, libxl, xenstored, xenconsoled, /etc/xen/scripts (copied into dom0)
  xenstore-utils    # xenstore-read/-write/-ls ... (copied into dom0)
  libxen-dev        # Xen headers, for tools built against Xen later
  util-linux        # flock and losetup for the hotplug scripts
  e2fsprogs         # mke2fs/e2fsck for dom0 (busybox has no ext4 mkfs, no fsck)
  bash              # the hotplug scripts are bash scripts
  xz-utils zstd     # to extract the ELF vmlinux from the bzImage, Debian 13 modules
  gcc libc6-dev     # xtio, the static guest I/O tool
  debian-archive-keyring  # the trixie source list of the Xen 4.20 platform (host/apt-private.sh)
  # The AFS stages (host/build-afs.sh copies these into dom0 and makes the test cell with them):
  krb5-kdc krb5-admin-server krb5-user   # krb5kdc, kdb5_util, kadmin.local, kinit/klist
  openafs-client openafs-krb5            # pts, vos, fs, tokens, pagsh, afsd; aklog, akeyconvert
  libopenafs-dev                         # afslock (tools/afslock.c), the second client of afs-lock-openafs
  keyutils                               # keyctl, request-key (kAFS tokens and its DNS upcall)
  make                                   # openafs.ko (host/build-openafs-ko.sh, XEN_TEST_AFS_OPENAFS=1)
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "packages: all present"
  exit 0
fi

echo "packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
