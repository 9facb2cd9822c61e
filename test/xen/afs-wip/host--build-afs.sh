#!/bin/bash
# The AFS part of the dom0 tree (sourced by build-dom0.sh, after rootfs-lib.sh): the
# OpenAFS servers and kafs-client (apt-get download, never installed on the host), the MIT
# KDC and client tools and the OpenAFS client tools of the host, the kernel modules kAFS needs,
# and the test cell (dom0/afs/make-cell.sh), made once in a chroot of the tree inside new
# network, mount and pid namespaces and cached: nothing of the host's AFS, Kerberos or
# network is touched. Uses $root, $kver, $CACHE, $HERE.
set -euo pipefail

afs_dir=$CACHE/afs
AFS_STATE_LIST=$(. "$HERE/dom0/afs/cell.sh"; echo "$AFS_STATE")
afs_debs="openafs-dbserver openafs-fileserver kafs-client libkafs-client0 attr"
mkdir -p "$afs_dir/debs"

# 1. The packages the host does not have, unpacked (cached by name and version).
afs_pkgroot=$afs_dir/pkgroot
afs_want=$(for p in $afs_debs; do apt-cache policy "$p" | awk -v p="$p" '/Candidate:/ {print p "=" $2}'; done | tr '\n' ' ')
if [ "$(cat "$afs_dir/pkgroot.versions" 2>/dev/null)" != "$afs_want" ]; then
  echo "afs: downloading $afs_want"
  rm -rf "$afs_dir/debs"/*.deb "$afs_pkgroot"
  (cd "$afs_dir/debs" && apt-get -q -o APT::Sandbox::User=root download $afs_want)
  mkdir -p "$afs_pkgroot"
  for d in "$afs_dir/debs"/*.deb; do dpkg-deb -x "$d" "$afs_pkgroot"; done
  echo "$afs_want" > "$afs_dir/pkgroot.versions"
else
  echo "afs: reusing $afs_pkgroot ($afs_want)"
fi

# 2. Programs and libraries.
afs_lib=/usr/lib/x86_64-linux-gnu
for b in ptserver vlserver fileserver volserver salvager; do
  add_file "$root" "$afs_pkgroot/usr/lib/openafs/$b" "/usr/lib/openafs/$b"
  add_libs "$root" "$afs_pkgroot/usr/lib/openafs/$b"
done
add_file "$root" "$afs_pkgroot/usr/lib/libkafs_client.so.0.1" /usr/lib/libkafs_client.so.0
LD_LIBRARY_PATH=$afs_pkgroot/usr/lib add_libs "$root" "$afs_pkgroot/usr/bin/aklog-kafs"
add_file "$root" "$afs_pkgroot/usr/bin/aklog-kafs" /usr/bin/aklog-kafs
for b in setfattr getfattr; do add_bin "$root" "$afs_pkgroot/usr/bin/$b" "/usr/bin/$b"; done
for b in /usr/sbin/akeyconvert /usr/sbin/asetkey /usr/bin/pts /usr/bin/vos /usr/bin/fs /usr/bin/tokens /usr/bin/aklog /usr/bin/udebug /usr/bin/rxdebug /usr/bin/pagsh.openafs \
         /usr/sbin/krb5kdc /usr/sbin/kdb5_util /usr/sbin/kadmin.local /usr/bin/kinit /usr/bin/klist /usr/bin/kdestroy /bin/keyctl; do
  add_bin "$root" "$b"
done
ln -sf pagsh.openafs "$root/usr/bin/pagsh"
# Loaded at run time, so ldd does not list them: the KDC database module, and libverto's
# libev back end (krb5kdc fails "Unable to load event loop" without it).
add_bin "$root" "$afs_lib/krb5/plugins/kdb/db2.so"
for l in "$afs_lib"/libverto-libev.so.1 "$afs_lib"/libev.so.4; do add_bin "$root" "$l"; done
add_libs "$root" "$afs_lib/libkadm5srv_mit.so.12" 2>/dev/null || true
# Name service: the servers and the Kerberos tools look up root and localhost.
[ -f "$root/etc/passwd" ] || echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
[ -f "$root/etc/group" ] || echo 'root:x:0:' > "$root/etc/group"
# The servers take their address from the host name (gethostbyname): dom0 is the machine's name.
printf '127.0.0.1 localhost\n10.99.0.1 dom0\n' > "$root/etc/hosts"
printf 'passwd: files\ngroup: files\nhosts: files\n' > "$root/etc/nsswitch.conf"
ln -sf ../proc/self/mounts "$root/etc/mtab"
# kAFS asks user space for a cell's VL servers (a dns_resolver key, afsdb:CELL) even when the
# cell was added with addresses: without request-key and kafs-dns every lookup fails with
# EDESTADDRREQ. kafs-dns answers from /etc/kafs/client.conf, which names the test cell only.
add_bin "$root" /sbin/request-key
add_file "$root" /etc/request-key.conf
add_file "$root" "$afs_pkgroot/etc/request-key.d/kafs_dns.conf" /etc/request-key.d/kafs_dns.conf
LD_LIBRARY_PATH=$afs_pkgroot/usr/lib add_libs "$root" "$afs_pkgroot/usr/libexec/kafs-dns"
add_file "$root" "$afs_pkgroot/usr/libexec/kafs-dns" /usr/libexec/kafs-dns
add_file "$root" "$afs_pkgroot/etc/kafs/client.conf" /etc/kafs/client.conf
mkdir -p "$root/etc/kafs/client.d" "$root/usr/share/kafs"
: > "$root/usr/share/kafs/cellservdb.conf" # no public cells: nothing may look beyond dom0
(. "$HERE/dom0/afs/cell.sh"; cat <<CONF
[defaults]
	thiscell = $AFS_CELL
[cells]
	$AFS_CELL = {
		description = "afsfile test cell"
		use_dns = no
		kerberos_realm = $AFS_REALM
		servers = {
			dom0 = {
				address = $AFS_ADDR
			}
		}
	}
CONF
) > "$root/etc/kafs/client.d/afstest.conf"

# The OpenAFS client, when host/build-openafs-ko.sh has built openafs.ko for this kernel
# (XEN_TEST_AFS_CLIENT=openafs selects it in dom0; kAFS otherwise).
afs_ko=$CACHE/openafs-ko/openafs-$kver.ko
if [ -s "$afs_ko" ]; then
  add_file "$root" "$afs_ko" /xentest/afs/openafs.ko
  strip --strip-debug "$root/xentest/afs/openafs.ko" # 28 MB of debug info otherwise
  add_bin "$root" /sbin/afsd
  echo "afs: OpenAFS client included ($afs_ko)"
fi
echo "AFS_CLIENT=${XEN_TEST_AFS_CLIENT:-kafs}" > "$root/xentest/afs/client.sh"

# 3. kAFS and what rxkad and aklog-kafs need of the kernel.
add_modules "$root" "$CACHE/linux" "$kver" kafs rxrpc fcrypt pcbc af_alg algif_hash algif_skcipher dummy

# 4. The cell, made once per version of the scripts and packages.
afs_key=$( { cat "$HERE/dom0/afs/cell.sh" "$HERE/dom0/afs/make-cell.sh"; echo "$afs_want"; } | sha256sum | cut -c1-16)
afs_tar=$afs_dir/cell-$afs_key.tar
if [ ! -s "$afs_tar" ]; then
  echo "afs: making the cell (key $afs_key)"
  rm -f "$afs_dir"/cell-*.tar
  # shellcheck disable=SC2016
  unshare --net --mount --pid --uts --fork --propagation private sh -euc '
    root=$1
    hostname dom0
    mount -t proc proc "$root/proc"
    mount -t tmpfs tmpfs "$root/dev" && for n in null zero random urandom; do cp -a "/dev/$n" "$root/dev/$n"; done
    mount -t tmpfs tmpfs "$root/run"
    mount -t tmpfs tmpfs "$root/tmp"
    exec chroot "$root" /xentest/afs/make-cell.sh
  ' sh "$root" > "$afs_dir/make-cell.log" 2>&1 || { cat "$afs_dir/make-cell.log"; echo "afs: making the cell failed" >&2; exit 1; }
  tail -n 3 "$afs_dir/make-cell.log"
  (cd "$root" && tar -cf "$afs_tar.tmp" $AFS_STATE_LIST)
  mv "$afs_tar.tmp" "$afs_tar"
else
  echo "afs: reusing the cell $afs_tar"
  (cd "$root" && tar -xf "$afs_tar")
fi
