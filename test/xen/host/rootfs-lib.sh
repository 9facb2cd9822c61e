#!/bin/bash
# Helpers to assemble an initramfs tree from host files. Source this file.
# Every function takes the tree's root as its first argument.
# SYSROOT (default empty: the host): where add_bin takes executables and their
# libraries from, e.g. an unpacked Debian 13 root for the Xen 4.20 dom0.
SYSROOT=${SYSROOT:-}

# Base directories and busybox (every applet as a link in /bin).
rootfs_init() {
  local root=$1
  rm -rf "$root"
  mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,run,tmp,root,lib,lib64,usr/bin,usr/sbin,usr/lib,var/lib,var/log,var/lock}
  ln -s ../run "$root/var/run"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  local a
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
  done
}

# Copy a file to the same path (or DEST) in the tree, keeping its mode.
add_file() {
  local root=$1 src=$2 dest=${3:-$2}
  mkdir -p "$root$(dirname "$dest")"
  cp -L --preserve=mode "$src" "$root$dest"
}

# The file behind system path P: on the host, or in SYSROOT with its symbolic
# links followed inside SYSROOT (an absolute link must not lead to the host).
sys_file() {
  local p=$1 n=0 t
  [ -z "$SYSROOT" ] && { echo "$p"; return; }
  while [ -L "$SYSROOT$p" ] && [ $n -lt 40 ]; do
    t=$(readlink "$SYSROOT$p")
    case $t in /*) p=$t ;; *) p=$(dirname "$p")/$t ;; esac
    n=$((n + 1))
  done
  # a link in a parent directory (merged /usr: /lib -> usr/lib)
  t=$(cd "$SYSROOT" && realpath -m --relative-base=. "./$p" 2>/dev/null) || t=$p
  case $t in /*) echo "$t" ;; *) echo "$SYSROOT/${t#./}" ;; esac
}

# Copy the shared libraries a dynamic executable or library needs: ldd on the
# host; in SYSROOT, its own loader's --list with its library directories.
add_libs() {
  local root=$1 obj=$2 lib src
  if [ -z "$SYSROOT" ]; then
    for lib in $(ldd "$obj" 2>/dev/null | grep -o '/[^ ]*' || true); do
      [ -e "$root$lib" ] || add_file "$root" "$lib"
    done
    return
  fi
  local ld=$SYSROOT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
  [ -e "$root/lib64/ld-linux-x86-64.so.2" ] || add_file "$root" "$ld" /lib64/ld-linux-x86-64.so.2
  for lib in $("$ld" --library-path "$SYSROOT/usr/lib/x86_64-linux-gnu:$SYSROOT/lib/x86_64-linux-gnu:$SYSROOT/usr/lib" \
                 --list "$obj" 2>/dev/null |
               grep -o "$SYSROOT/[^ ]*" || true); do
    src=$lib lib=${lib#"$SYSROOT"}
    lib=/usr/lib/x86_64-linux-gnu/$(basename "$lib") # one place, in the glibc default path
    [ -e "$root$lib" ] || add_file "$root" "$src" "$lib"
  done
}

# Copy an executable (from SYSROOT or the host) and its libraries; DEST
# defaults to the same path.
add_bin() {
  local root=$1 src=$2 dest=${3:-$2} file
  file=$(sys_file "$src")
  [ -e "$file" ] || { echo "rootfs: $src not found${SYSROOT:+ in $SYSROOT}" >&2; return 1; }
  add_file "$root" "$file" "$dest"
  add_libs "$root" "$file"
}

# Copy a directory tree of the system (SYSROOT or host) to the same path.
add_tree() {
  local root=$1 src=$2 file
  file=$(sys_file "$src")
  mkdir -p "$root$(dirname "$src")"
  cp -a "$file" "$root$src"
}

# Copy kernel modules and everything they depend on, then depmod the tree.
# Usage: add_modules ROOT KROOT KVER module...
add_modules() {
  local root=$1 kroot=$2 kver=$3; shift 3
  local m line ko rel
  mkdir -p "$root/lib/modules/$kver"
  for m in "$@"; do
    while read -r line; do
      case $line in
        insmod\ *) ko=${line#insmod }; ko=${ko%% *}; rel=${ko#"$kroot"}
                   # busybox modprobe cannot read compressed modules (Debian 13's are .ko.xz)
                   case $rel in
                     *.ko.xz) mkdir -p "$root$(dirname "$rel")"; xz -dc "$ko" > "$root${rel%.xz}" ;;
                     *.ko.zst) mkdir -p "$root$(dirname "$rel")"; zstd -qdc "$ko" > "$root${rel%.zst}" ;;
                     *) add_file "$root" "$ko" "$rel" ;;
                   esac ;;
      esac
    done < <(modprobe -d "$kroot" -S "$kver" -D "$m")
  done
  cp "$kroot/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$kver/" 2>/dev/null || true
  depmod -b "$root" "$kver"
}

# Pack the tree as a newc cpio archive, owned by root; COMPRESS = gzip|none.
pack_cpio() {
  local root=$1 out=$2 compress=${3:-gzip}
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
    if [ "$compress" = gzip ]; then gzip -1; else cat; fi > "$out.tmp"
  mv "$out.tmp" "$out"
}
