#!/bin/bash
# openafs.ko for the dom0 kernel, built once on the host from Debian's openafs-modules-dkms
# source and the linux-headers of that kernel (both apt-get download'ed and unpacked under
# a work directory, never installed), as dkms.conf builds it. Takes several minutes.
# Usage: build-openafs-ko.sh [DIR KVER]: DIR/openafs.ko for kernel KVER (a cache entry's
# builder); without arguments $CACHE/openafs-ko/openafs-KVER.ko for $CACHE/boot/kernel-version,
# reused while it exists.
set -euo pipefail
if [ $# -ge 2 ]; then
  dir=$1 kver=$2 out=$1/openafs.ko
else
  : "${CACHE:?}"
  kver=$(cat "$CACHE/boot/kernel-version")
  dir=$CACHE/openafs-ko
  out=$dir/openafs-$kver.ko
  if [ -s "$out" ]; then echo "openafs.ko: reusing $out"; exit 0; fi
fi
mkdir -p "$dir/debs"
rm -rf "$dir/root" "$dir/build" "$dir"/debs/*.deb
(cd "$dir/debs" && apt-get -q -o APT::Sandbox::User=root download openafs-modules-dkms \
  "linux-headers-$kver" "linux-headers-${kver%-*}-common" "linux-kbuild-${kver%%.*}.$(echo "$kver" | cut -d. -f2)")
mkdir -p "$dir/root"
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
cp src/libafs/MODLOAD-*/openafs.ko "$out.tmp"
mv "$out.tmp" "$out"
modinfo "$out" | grep -E '^(version|vermagic):'
[ $# -ge 2 ] && rm -rf "$dir/root" "$dir/build" "$dir/debs" # the entry keeps the module and logs
exit 0
