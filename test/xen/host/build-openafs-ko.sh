#!/bin/bash
# openafs.ko for the dom0 kernel, built on the host from Debian's openafs-modules-dkms source
# and the linux-headers of that kernel (both apt-get download'ed through the private bookworm
# apt of host/apt-private.sh and unpacked under DIR, never installed), as dkms.conf builds it.
# Takes several minutes. The builder of the cache kind openafs-ko (host/build-afs.sh).
# Usage: build-openafs-ko.sh DIR KVER   -> DIR/openafs.ko (+ configure.log, make.log)
set -euo pipefail
HERE=${HERE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
. "$HERE/host/cache.sh"
. "$HERE/host/apt-private.sh"
dir=${1:?usage: build-openafs-ko.sh DIR KVER} kver=${2:?usage: build-openafs-ko.sh DIR KVER}
apt=$(cache_root)/apt/bookworm
apt_private_init "$apt" bookworm
apt_private_update "$apt"
mkdir -p "$dir/debs" "$dir/root"
(cd "$dir/debs" && apt_private "$apt" apt-get download openafs-modules-dkms \
  "linux-headers-$kver" "linux-headers-${kver%-*}-common" "linux-kbuild-${kver%%.*}.$(echo "$kver" | cut -d. -f2)")
for d in "$dir"/debs/*.deb; do dpkg-deb -x "$d" "$dir/root"; done
hdr=$dir/root/usr/src/linux-headers-$kver
# The headers include their common half by an absolute path: point it at the unpacked one.
sed -i "s|^include /usr/src/|include $dir/root/usr/src/|" "$hdr/Makefile"
src=$(echo "$dir"/root/usr/src/openafs-*)
cp -a "$src" "$dir/build"
cd "$dir/build"
./configure --disable-linux-syscall-probing --with-afs-sysname=amd64_linux26 \
  --with-linux-kernel-packaging --with-linux-kernel-headers="$hdr" > "$dir/configure.log" 2>&1 \
  || { tail -n 30 "$dir/configure.log"; exit 1; }
make -j2 > "$dir/make.log" 2>&1 || { tail -n 40 "$dir/make.log"; exit 1; }
cp src/libafs/MODLOAD-*/openafs.ko "$dir/openafs.ko"
modinfo "$dir/openafs.ko" | grep -E '^(version|vermagic):'
cd / && rm -rf "$dir/root" "$dir/build" "$dir/debs" # the entry keeps the module and the logs
