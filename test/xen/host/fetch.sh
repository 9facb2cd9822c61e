#!/bin/bash
# Download (apt-get download, never installed) and unpack the Xen hypervisor and
# the Linux kernel used for dom0 and the domUs, into $CACHE. Reuses what is there.
#
# Produces:
#   $CACHE/boot/xen.elf            multiboot hypervisor image for QEMU -kernel
#   $CACHE/boot/vmlinuz            the kernel (dom0 and domU)
#   $CACHE/boot/vmlinux            the same kernel decompressed (ELF), for the
#                                  domUs: libxl then skips an xz decompression
#                                  that costs seconds under TCG at every xl create
#   $CACHE/boot/kernel-version     e.g. 6.1.0-56-amd64
#   $CACHE/linux/lib/modules/VER   its modules, depmod'ed
# Env: XEN_TEST_KERNEL_PKG overrides the kernel package (default: what
# linux-image-amd64 depends on, -unsigned).
set -euo pipefail
: "${CACHE:?}"

boot=$CACHE/boot dl=$CACHE/downloads
mkdir -p "$boot" "$dl"

apt_dl() { # download one package (name or name=version) into $dl
  (cd "$dl" && apt-get -q -o APT::Sandbox::User=root download "$1")
}

need_lists() { # apt-cache knows nothing before the first apt-get update
  apt-cache show linux-image-amd64 >/dev/null 2>&1 || apt-get update -q
}

if [ ! -s "$boot/xen.elf" ]; then
  need_lists
  ver=$(dpkg-query -W -f='${Version}' xen-utils-4.17) # match the installed tools
  echo "fetch: xen-hypervisor-4.17-amd64=$ver"
  rm -f "$dl"/xen-hypervisor-4.17-amd64_*.deb
  apt_dl "xen-hypervisor-4.17-amd64=$ver"
  rm -rf "$CACHE/xen" && mkdir -p "$CACHE/xen"
  dpkg-deb -x "$dl"/xen-hypervisor-4.17-amd64_*.deb "$CACHE/xen"
  zcat "$CACHE/xen/boot/xen-4.17-amd64.gz" > "$boot/xen.elf.tmp"
  mv "$boot/xen.elf.tmp" "$boot/xen.elf"
else
  echo "fetch: reusing $boot/xen.elf"
fi

if [ ! -s "$boot/vmlinuz" ] || [ ! -s "$boot/kernel-version" ]; then
  need_lists
  pkg=${XEN_TEST_KERNEL_PKG:-}
  if [ -z "$pkg" ]; then
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [ -n "$pkg" ] || { echo "fetch: cannot tell the kernel package from linux-image-amd64" >&2; exit 1; }
    pkg=$pkg-unsigned
  fi
  echo "fetch: $pkg"
  rm -f "$dl"/linux-image-*.deb
  apt_dl "$pkg"
  rm -rf "$CACHE/linux" && mkdir -p "$CACHE/linux"
  dpkg-deb -x "$dl"/linux-image-*.deb "$CACHE/linux"
  kver=$(ls "$CACHE/linux/lib/modules" | head -n1)
  depmod -b "$CACHE/linux" "$kver"
  cp "$CACHE/linux/boot/vmlinuz-$kver" "$boot/vmlinuz"
  echo "$kver" > "$boot/kernel-version"
else
  echo "fetch: reusing kernel $(cat "$boot/kernel-version")"
fi

if [ ! -s "$boot/vmlinux" ]; then
  # The bzImage holds an xz stream: find its magic and decompress from there
  # (xz exits 1 on the bytes after the stream; the output is complete).
  off=$(LC_ALL=C grep -m1 -obUaP '\xfd7zXZ\x00' "$boot/vmlinuz" | cut -d: -f1)
  [ -n "$off" ] || { echo "fetch: no xz stream in $boot/vmlinuz" >&2; exit 1; }
  tail -c +$((off + 1)) "$boot/vmlinuz" > "$boot/vmlinux.xz"
  xz -dc < "$boot/vmlinux.xz" > "$boot/vmlinux.tmp" 2>/dev/null || true
  rm -f "$boot/vmlinux.xz"
  [ "$(head -c 4 "$boot/vmlinux.tmp" | od -An -c | tr -d ' ')" = 177ELF ] ||
    { echo "fetch: decompressing the kernel gave no ELF image" >&2; exit 1; }
  mv "$boot/vmlinux.tmp" "$boot/vmlinux"
  echo "fetch: extracted $boot/vmlinux ($(du -h "$boot/vmlinux" | cut -f1))"
fi
