#!/bin/bash
# Helpers to assemble an initramfs tree from host files. Source this file.
# Every function takes the tree's root as its first argument.

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

# Copy the shared libraries a dynamic executable or library needs (by ldd).
add_libs() {
  local root=$1 obj=$2 lib
  for lib in $(ldd "$obj" 2>/dev/null | grep -o '/[^ ]*' || true); do
    [ -e "$root$lib" ] || add_file "$root" "$lib"
  done
}

# Copy an executable and its libraries; DEST defaults to the same path.
add_bin() {
  local root=$1 src=$2 dest=${3:-$2}
  add_file "$root" "$src" "$dest"
  add_libs "$root" "$src"
}

# Copy kernel modules and everything they depend on, then depmod the tree.
# Usage: add_modules ROOT KROOT KVER module...
add_modules() {
  local root=$1 kroot=$2 kver=$3; shift 3
  local m line ko
  for m in "$@"; do
    while read -r line; do
      case $line in
        insmod\ *) ko=${line#insmod }; ko=${ko%% *}
                   add_file "$root" "$ko" "${ko#"$kroot"}" ;;
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
