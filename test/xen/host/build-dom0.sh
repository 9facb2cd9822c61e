#!/bin/bash
# Build the dom0 initramfs: busybox, the Xen toolstack and daemons, the hotplug
# scripts and their helpers, kernel modules, the guest kernel and initramfs,
# test/xen/dom0 (the /init and the stages) and, when present, afsfile.
# The Xen userland (xl, libxl, xenstored, the hotplug scripts) and the tools the
# scripts call come from the host on 4.17 (Debian 12, xen-utils-4.17 installed)
# and from the platform's Debian 13 root on 4.20 (SYSROOT).
# Output: $BUILD/boot/dom0.cpio[.gz]
#
# Env: XEN, PLATFORM, BUILD, TOOLS (set by prepare.sh)
# Env: AFSFILE_BIN           the afsfile executable (default <repo>/dist/afsfile)
#      AFSFILE_INSTALL_SH    install script (default <repo>/install.sh)
#      AFSFILE_WORKER_ARGS   arguments of the worker in dom0 (default "worker")
#      AFSFILE_WORKER_ENV    NAME=VALUE words added to the worker's environment (default
#                            none), e.g. "DEBUG=afsfile:*"
#      AFSFILE_INSTALL_ARGS  arguments given to install.sh in dom0 (default none)
#      XEN_TEST_AFS          0 leaves AFS out of dom0 (default: in; host/build-afs.sh)
#      XEN_TEST_AFS_OPENAFS  1 builds openafs.ko (minutes, cached) for the OpenAFS client stages
#      XEN_TEST_DOM0_COMPRESS gzip|none (default none: gunzip of ~100 MB under
#                            TCG costs more than QEMU loading it uncompressed)
set -euo pipefail
: "${XEN:?}" "${PLATFORM:?}" "${BUILD:?}" "${TOOLS:?}" "${HERE:?}" "${REPO:?}"
SYSROOT=
[ -d "$PLATFORM/sysroot" ] && SYSROOT=$PLATFORM/sysroot
. "$HERE/host/rootfs-lib.sh"

kver=$(cat "$PLATFORM/kernel-version")
root=$BUILD/rootfs/dom0
xbin=/usr/lib/xen-$XEN/bin

rootfs_init "$root"

# Kernel modules: the Xen device drivers, blkback, loop, a RAM disk and ext4.
add_modules "$root" "$PLATFORM/linux" "$kver" \
  xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkback loop brd ext4 crc32c_generic \
  virtio_pci 9pnet_virtio 9p # dev mode: the host's tree over 9p

# Toolstack and daemons (the /usr/sbin wrappers of Debian are replaced by links).
for b in xl xenstored xenconsoled xen-init-dom0 xenconsole libxl-save-helper xenstore-control; do
  add_bin "$root" "$xbin/$b"
done
for b in xl xenstored xenconsoled; do ln -sf "../lib/xen-$XEN/bin/$b" "$root/usr/sbin/$b"; done
add_bin "$root" /usr/bin/xenstore
for b in read write ls list rm exists watch chmod; do ln -sf xenstore "$root/usr/bin/xenstore-$b"; done
ln -sf "../lib/xen-$XEN/bin/xenstore-control" "$root/usr/bin/xenstore-control"
# xl needs libgcc_s at run time (pthread_cancel); ldd does not list it.
if [ -n "$SYSROOT" ]; then
  add_file "$root" "$(sys_file /usr/lib/x86_64-linux-gnu/libgcc_s.so.1)" /usr/lib/x86_64-linux-gnu/libgcc_s.so.1
else
  add_file "$root" "$(gcc -print-file-name=libgcc_s.so.1)" /lib/x86_64-linux-gnu/libgcc_s.so.1
fi
mkdir -p "$root"/etc/xen "$root"/var/lib/xen "$root"/var/lib/xenstored "$root"/var/log/xen/console
add_tree "$root" /etc/xen/scripts
add_file "$root" "$(sys_file /etc/xen/xl.conf)" /etc/xen/xl.conf

# What the hotplug scripts call beyond busybox.
add_bin "$root" /bin/bash /bin/bash
add_bin "$root" /usr/bin/flock /usr/bin/flock
add_bin "$root" /sbin/losetup /usr/sbin/losetup
add_bin "$root" /usr/bin/setpriv /usr/bin/setpriv   # the worker starts device processes through it (no capabilities)
add_bin "$root" /sbin/mke2fs /usr/sbin/mke2fs
add_bin "$root" /sbin/e2fsck /usr/sbin/e2fsck
add_bin "$root" /usr/bin/install /usr/bin/install # install.sh uses it; busybox has none
ln -sf mke2fs "$root/usr/sbin/mkfs.ext4"

# The guest: same kernel, its own initramfs; and the I/O tool for verification.
add_file "$root" "$PLATFORM/vmlinux" /xentest/guest/vmlinux
add_file "$root" "$BUILD/boot/domu.cpio.gz" /xentest/guest/domu.cpio.gz
add_file "$root" "$TOOLS/xtio" /usr/bin/xtio
# afslock (tools/afslock.c, built by prepare.sh against the host's libopenafs-dev): the second
# AFS client of the afs-lock-openafs stages, which run on 4.17 (the host's userland) only.
if [ -z "$SYSROOT" ] && [ -x "$TOOLS/afslock" ]; then
  add_file "$root" "$TOOLS/afslock" /usr/bin/afslock
  add_libs "$root" "$TOOLS/afslock"
fi

# The test itself.
cp -r "$HERE/dom0/." "$root/xentest/"
cp "$HERE/stages.txt" "$root/xentest/stages.txt"
mv "$root/xentest/init" "$root/init"
chmod 755 "$root/init" "$root"/xentest/*.sh "$root"/xentest/stages/*.sh

# AFS (the afs groups; Debian 12's packages and kernel on 4.17, Debian 13's on 4.20): servers,
# clients, kAFS modules and the prebuilt test cell (host/build-afs.sh). XEN_TEST_AFS=0 leaves
# them out.
if [ "${XEN_TEST_AFS:-1}" != 0 ]; then
  . "$HERE/host/build-afs.sh"
fi

# afsfile, when built.
afsfile_bin=${AFSFILE_BIN:-$REPO/dist/afsfile}
install_sh=${AFSFILE_INSTALL_SH:-$REPO/install.sh}
compress=${XEN_TEST_DOM0_COMPRESS:-none}
{
  echo "# written by test/xen/host/build-dom0.sh"
  printf 'XEN_VERSION=%q\n' "$XEN"
  printf 'AFSFILE_WORKER_ARGS=%q\n' "${AFSFILE_WORKER_ARGS:-worker}"
  printf 'AFSFILE_WORKER_ENV=%q\n' "${AFSFILE_WORKER_ENV:-}"
  printf 'AFSFILE_INSTALL_ARGS=%q\n' "${AFSFILE_INSTALL_ARGS:-}"
} > "$root/xentest/config.sh"
if [ -f "$afsfile_bin" ]; then
  # A host file: its libraries come from dom0's system (the sysroot on 4.20).
  add_file "$root" "$afsfile_bin" /usr/lib/xen/bin/afsfile
  add_libs "$root" "$afsfile_bin"
  chmod 755 "$root/usr/lib/xen/bin/afsfile"
  mkdir -p "$root/xentest/afsfile/dist"
  ln -s /usr/lib/xen/bin/afsfile "$root/xentest/afsfile/dist/afsfile"
  # Files build.mjs generates next to it (config template, man page, completion): install.sh
  # copies them instead of running the executable (seconds under emulation).
  for f in "$(dirname "$afsfile_bin")"/afsfile.conf "$(dirname "$afsfile_bin")"/afsfile.8 "$(dirname "$afsfile_bin")"/afsfile.bash-completion; do
    [ -f "$f" ] && cp "$f" "$root/xentest/afsfile/dist/"
  done
  if [ -f "$install_sh" ]; then
    cp "$install_sh" "$root/xentest/afsfile/install.sh"
    chmod 755 "$root/xentest/afsfile/install.sh"
  fi
  printf 'AFSFILE_SHA256=%s\n' "$(sha256sum "$afsfile_bin" | cut -d' ' -f1)" >> "$root/xentest/config.sh"
  echo "dom0: including afsfile from $afsfile_bin${install_sh:+ (install.sh: $( [ -f "$install_sh" ] && echo yes || echo no))}"
else
  echo "dom0: no afsfile at $afsfile_bin; the afsfile stages will be skipped"
fi

rm -f "$BUILD"/boot/dom0.cpio "$BUILD"/boot/dom0.cpio.gz
out=$BUILD/boot/dom0.cpio
[ "$compress" = gzip ] && out=$out.gz
pack_cpio "$root" "$out" "$compress"
echo "dom0: $(du -h "$out" | cut -f1) $out"
