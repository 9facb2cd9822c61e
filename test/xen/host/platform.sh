#!/bin/bash
# Make (or find) the cached platform of one Xen version and print its directory:
#   xen.elf         the hypervisor, multiboot ELF for QEMU -kernel
#   vmlinuz         the Linux kernel of dom0 and the domUs
#   vmlinux         the same kernel as ELF (libxl skips an xz decompression that
#                   costs seconds under TCG at every xl create)
#   kernel-version  e.g. 6.12.57+deb13-amd64
#   linux/lib/modules/VER   its modules (uncompressed .ko), depmod'ed
#   sysroot/        (4.20) the Debian 13 packages dom0's userland comes from,
#                   unpacked: libxl 4.20 needs Debian 13's libc, so not the host's
#   packages.txt    the packages and versions it was made from
# Usage: platform.sh 4.17|4.20
#
# Packages come from a private apt configuration under $XEN_TEST_CACHE/apt/SUITE
# (host/apt-private.sh: nothing of the host's apt setup is used or changed) and
# are `apt-get download`ed to $XEN_TEST_CACHE/downloads/SUITE, never installed.
# The entry's key (host/cache.sh) covers every package version and this script,
# so a new Debian point release or kernel gives a new entry.
# Env: XEN_TEST_KERNEL_PKG overrides the kernel package (default: what
# linux-image-amd64 of that release depends on, -unsigned).
set -euo pipefail
HERE=${HERE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
. "$HERE/host/cache.sh"
. "$HERE/host/apt-private.sh"

xen=${1:?usage: platform.sh 4.17|4.20}
case $xen in
  4.17) suite=bookworm ;;
  4.20) suite=trixie ;;
  *) echo "platform: unknown Xen version $xen (known: 4.17 4.20)" >&2; exit 2 ;;
esac
root=$(cache_root)
apt=$root/apt/$suite
dl=$root/downloads/$suite
mkdir -p "$dl"
apt_private_init "$apt" "$suite"
apt_private_update "$apt"

candidate() { apt_private "$apt" apt-cache policy "$1" | awk '/Candidate:/ {print $2}'; }

# The hypervisor: on 4.17 the version of the host's xen-utils-4.17 (dom0's
# toolstack is the host's, and must match); on 4.20 the current trixie one.
hyp=xen-hypervisor-$xen-amd64
if [ "$xen" = 4.17 ]; then
  hyp_ver=$(dpkg-query -W -f='${Version}' xen-utils-4.17)
else
  hyp_ver=$(candidate "$hyp")
fi
kpkg=${XEN_TEST_KERNEL_PKG:-}
if [ -z "$kpkg" ]; then
  kpkg=$(apt_private "$apt" apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$kpkg" ] || { echo "platform: cannot tell the kernel package of $suite" >&2; exit 1; }
  kpkg=$kpkg-unsigned
fi
kver_pkg=$(candidate "$kpkg")
[ -n "$hyp_ver" ] && [ "$hyp_ver" != '(none)' ] || { echo "platform: no $hyp in $suite" >&2; exit 1; }
[ -n "$kver_pkg" ] && [ "$kver_pkg" != '(none)' ] || { echo "platform: no $kpkg in $suite" >&2; exit 1; }

# dom0's userland on 4.20: these packages and what they depend on, minus what
# dom0 never runs (python for pygrub, systemd/udev, perl, debconf...).
SYSROOT_PKGS=(xen-utils-4.20 xen-utils-common xenstore-utils libgcc-s1 libstdc++6 bash util-linux mount e2fsprogs coreutils
  # the AFS stages on Debian 13 (host/build-afs.sh): kAFS's tools, the servers, the KDC
  kafs-client libkafs-client0 openafs-dbserver openafs-fileserver openafs-client openafs-krb5 attr keyutils
  krb5-kdc krb5-admin-server krb5-user libverto-libev1t64)
SYSROOT_SKIP='^(python3.*|libpython3.*|systemd.*|libsystemd-shared|udev|perl.*|debconf|cdebconf|tzdata|ucf|opensysusers|libpam.*|passwd|login.defs|sensible-utils|media-types|netbase|readline-common|procps|init-system-helpers|libdebian-installer4|libnewt0.52|libslang2|libtextwrap1|libdebconfclient0|base-passwd)$'
sysroot_list() {
  local names
  names=$(apt_private "$apt" apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "${SYSROOT_PKGS[@]}" 2>/dev/null |
    grep -v '^ ' | grep -v '^<' | grep -Ev "$SYSROOT_SKIP" | sort -u)
  # shellcheck disable=SC2086 # package names: one word each
  apt_private_policy $names
}
apt_private_policy() { # PKG... -> PKG=CANDIDATE lines (one apt-cache call)
  apt_private "$apt" apt-cache policy "$@" | awk '/^[^ ].*:$/ {p = substr($0, 1, length($0) - 1)} /Candidate:/ {print p "=" $2}'
}

pkgs="$hyp=$hyp_ver
$kpkg=$kver_pkg"
if [ "$xen" = 4.20 ]; then pkgs="$pkgs
$(sysroot_list)"; fi

download() { deb_download "$apt" "$dl" "$1"; } # PKG=VER into $dl (once): the .deb's path

build() {
  local out=$1 deb kver
  printf '%s\n' "$pkgs" > "$out/packages.txt"
  deb=$(download "$hyp=$hyp_ver")
  mkdir -p "$out/xen"
  dpkg-deb -x "$deb" "$out/xen"
  zcat "$out/xen/boot/xen-$xen-amd64.gz" > "$out/xen.elf"
  rm -rf "$out/xen"

  deb=$(download "$kpkg=$kver_pkg")
  mkdir -p "$out/linux"
  dpkg-deb -x "$deb" "$out/linux"
  if [ -d "$out/linux/usr/lib/modules" ]; then # merged /usr (Debian 13)
    mkdir -p "$out/linux/lib" && mv "$out/linux/usr/lib/modules" "$out/linux/lib/modules"
  fi
  kver=$(ls "$out/linux/lib/modules" | head -n1)
  # (Debian 13's modules are .ko.xz: add_modules decompresses the few it copies.)
  depmod -b "$out/linux" "$kver"
  cp "$out/linux/boot/vmlinuz-$kver" "$out/vmlinuz"
  rm -rf "$out/linux/boot" "$out/linux/usr"
  echo "$kver" > "$out/kernel-version"
  # The bzImage holds a compressed ELF (xz on Debian 12, zstd on Debian 13):
  # find the stream's magic and decompress from there (the decompressor fails
  # on the bytes after the stream; the output is complete).
  local off magic tool
  for magic in '\xfd7zXZ\x00:xz' '\x28\xb5\x2f\xfd:zstd'; do
    tool=${magic##*:}
    off=$(LC_ALL=C grep -m1 -obUaP "${magic%:*}" "$out/vmlinuz" | head -n1 | cut -d: -f1)
    [ -n "$off" ] || continue
    tail -c +$((off + 1)) "$out/vmlinuz" | { "$tool" -dc 2>/dev/null || true; } > "$out/vmlinux"
    [ "$(head -c 4 "$out/vmlinux" | od -An -c | tr -d ' ')" = 177ELF ] && break
  done
  [ "$(head -c 4 "$out/vmlinux" 2>/dev/null | od -An -c | tr -d ' ')" = 177ELF ] ||
    { echo "platform: no xz or zstd stream with an ELF kernel in $out/vmlinuz" >&2; return 1; }

  if [ "$xen" = 4.20 ]; then
    mkdir -p "$out/sysroot"
    # base-files first: it makes the merged-/usr links (/lib -> usr/lib ...).
    local p
    for p in $(printf '%s\n' "$pkgs" | tail -n +3 | sort -t= -k1,1 | awk -F= '{print ($1 == "base-files" ? 0 : 1) " " $0}' | sort -k1,1n -s | cut -d' ' -f2); do
      dpkg-deb -x "$(download "$p")" "$out/sysroot"
    done
  fi
}

recipe="afsfile xen test platform $xen ($suite)
script $(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
$pkgs"
dir=$(cache_entry "platform-$xen" "$recipe" build)
cache_prune "platform-$xen" 2
echo "$dir"
