#!/bin/bash
# The AFS part of the dom0 tree (sourced by build-dom0.sh, after rootfs-lib.sh; XEN_TEST_AFS=0
# leaves it out). On Xen 4.17: the OpenAFS servers and kafs-client of Debian 12 (apt-get
# download'ed through the private bookworm apt of host/apt-private.sh, unpacked, never
# installed), the MIT KDC, Kerberos and OpenAFS client tools of the host. On Xen 4.20: all of
# them from Debian 13 (the platform's SYSROOT). Then the kernel modules kAFS needs, and two
# cache entries (host/cache.sh):
#   afs-cell/KEY    the test cell (dom0/afs/make-cell.sh), made in a chroot of this tree inside
#                   new network, mount, pid and uts namespaces: nothing of the host's AFS,
#                   Kerberos or network is touched. Keyed by the packages and tools it is made
#                   with and the sha256 of the scripts that make it.
#   openafs-ko/KEY  openafs.ko for the dom0 kernel (host/build-openafs-ko.sh, minutes): built
#                   only with XEN_TEST_AFS_OPENAFS=1, included whenever it exists. Keyed by the
#                   openafs-modules-dkms and linux-headers versions, the kernel and the script.
# Uses $root, $kver, $PLATFORM, $HERE, $BUILD.
set -euo pipefail
. "$HERE/host/cache.sh"
. "$HERE/host/apt-private.sh"

# On Xen 4.20 (SYSROOT: Debian 13's packages, unpacked by host/platform.sh, which adds the
# AFS ones to that dom0's userland) everything comes from SYSROOT: Debian 13's kernel, kAFS
# and servers. On 4.17: Debian 12 packages of a private apt beside the host's own tools.
if [ -n "${SYSROOT:-}" ]; then
  afs_pkgroot=$SYSROOT
  afs_versions() { # PKG... -> PKG=VER lines of the platform's packages.txt
    local p; for p in "$@"; do grep -m1 "^$p=" "$PLATFORM/packages.txt"; done
  }
  afs_want=$(afs_versions openafs-dbserver openafs-fileserver kafs-client libkafs-client0 attr)
else
  afs_apt=$(cache_root)/apt/bookworm
  afs_dl=$(cache_root)/downloads/bookworm
  mkdir -p "$afs_dl"
  apt_private_init "$afs_apt" bookworm
  apt_private_update "$afs_apt"
  afs_policy() { # PKG... -> PKG=CANDIDATE lines
    apt_private "$afs_apt" apt-cache policy "$@" | awk '/^[^ ].*:$/ {p = substr($0, 1, length($0) - 1)} /Candidate:/ {print p "=" $2}'
  }
  afs_download() { deb_download "$afs_apt" "$afs_dl" "$1"; } # PKG=VER -> the .deb's path (downloaded once)

  # 1. The packages the host does not have, unpacked for this build (seconds).
  afs_want=$(afs_policy openafs-dbserver openafs-fileserver kafs-client libkafs-client0 attr)
  afs_pkgroot=$BUILD/afs-pkgroot
  rm -rf "$afs_pkgroot" && mkdir -p "$afs_pkgroot"
  for p in $afs_want; do dpkg-deb -x "$(afs_download "$p")" "$afs_pkgroot"; done
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
for b in setfattr getfattr; do
  add_file "$root" "$afs_pkgroot/usr/bin/$b" "/usr/bin/$b"
  add_libs "$root" "$afs_pkgroot/usr/bin/$b"
done
for b in /usr/sbin/akeyconvert /usr/sbin/asetkey /usr/bin/pts /usr/bin/vos /usr/bin/fs /usr/bin/tokens /usr/bin/unlog \
         /usr/bin/aklog /usr/bin/udebug /usr/bin/rxdebug /usr/bin/pagsh.openafs /usr/bin/afsio \
         /usr/sbin/krb5kdc /usr/sbin/kdb5_util /usr/sbin/kadmin.local /usr/bin/kinit /usr/bin/klist \
         /usr/bin/kdestroy /bin/keyctl /sbin/afsd; do
  # Debian 13 ships MIT's kinit, klist, kdestroy as NAME.mit behind an alternative that
  # only its postinst makes.
  if [ -n "${SYSROOT:-}" ] && [ ! -e "$(sys_file "$b")" ] && [ -e "$(sys_file "$b.mit")" ]; then
    add_bin "$root" "$b.mit" "$b"
  else
    add_bin "$root" "$b"
  fi
done
ln -sf pagsh.openafs "$root/usr/bin/pagsh"
# Loaded at run time, so ldd does not list them: the KDC database module, and libverto's
# libev back end (krb5kdc fails "Unable to load event loop" without it).
add_bin "$root" "$afs_lib/krb5/plugins/kdb/db2.so"
# libverto looks for its back ends beside itself: the directory ldd named for libverto.so.1
# (/lib/... in this tree, which has no merged /usr).
if [ -n "${SYSROOT:-}" ]; then
  afs_verto_dir=/usr/lib/x86_64-linux-gnu # add_libs puts every SYSROOT library there
else
  afs_verto_dir=$(dirname "$(ldd /usr/sbin/krb5kdc | grep -o '/[^ ]*libverto\.so\.1')")
fi
for l in libverto-libev.so.1 libev.so.4; do add_bin "$root" "$afs_lib/$l" "$afs_verto_dir/$l"; done
add_libs "$root" "$(sys_file "$afs_lib/libkadm5srv_mit.so.12")" 2>/dev/null || true
# Name service: the servers and the Kerberos tools look up root and localhost.
[ -f "$root/etc/passwd" ] || echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
[ -f "$root/etc/group" ] || echo 'root:x:0:' > "$root/etc/group"
# The servers take their address from the host name (gethostbyname): dom0 is the machine's name.
printf '127.0.0.1 localhost\n10.99.0.1 dom0\n' > "$root/etc/hosts"
printf 'passwd: files\ngroup: files\nhosts: files\n' > "$root/etc/nsswitch.conf"
ln -sf ../proc/self/mounts "$root/etc/mtab"
# kAFS may ask user space for a cell's VL servers (a dns_resolver key, afsdb:CELL): request-key
# runs kafs-dns, which answers from /etc/kafs/client.conf (the test cell only, no DNS).
add_bin "$root" /sbin/request-key
add_file "$root" "$(sys_file /etc/request-key.conf)" /etc/request-key.conf
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
chmod 755 "$root/xentest/afs/make-cell.sh"

# 3. kAFS and what rxkad and aklog-kafs need of the kernel; dummy for the servers' address;
# veth for afs-lock-second-client's second client (a network namespace of its own).
add_modules "$root" "$PLATFORM/linux" "$kver" kafs rxrpc dns_resolver fcrypt pcbc af_alg algif_hash algif_skcipher dummy veth

# 4. The cell (cache kind afs-cell).
afs_make_cell() { # afs_make_cell DIR TREE: run make-cell.sh in TREE, keep its state as DIR/cell.tar
  local dir=$1 tree=$2 state
  state=$(. "$HERE/dom0/afs/cell.sh"; echo "$AFS_STATE")
  # shellcheck disable=SC2016
  unshare --net --mount --pid --uts --fork --propagation private sh -euc '
    root=$1
    hostname dom0
    mount -t proc proc "$root/proc"
    mount -t tmpfs tmpfs "$root/dev" && for n in null zero random urandom; do cp -a "/dev/$n" "$root/dev/$n"; done
    mount -t tmpfs tmpfs "$root/run"
    mount -t tmpfs tmpfs "$root/tmp"
    exec chroot "$root" /xentest/afs/make-cell.sh
  ' sh "$tree" > "$dir/make-cell.log" 2>&1 || { cat "$dir/make-cell.log"; echo "afs: making the cell failed" >&2; return 1; }
  tail -n 3 "$dir/make-cell.log"
  # shellcheck disable=SC2086 # paths of the tree, one word each
  (cd "$tree" && tar -cf "$dir/cell.tar" $state)
}
if [ -n "${SYSROOT:-}" ]; then
  afs_tools=$(afs_versions krb5-kdc krb5-admin-server krb5-user openafs-krb5 openafs-client keyutils)
else
  afs_tools=$(dpkg-query -W -f='${Package}=${Version}\n' krb5-kdc krb5-admin-server krb5-user openafs-krb5 openafs-client keyutils)
fi
afs_recipe="afsfile xen test afs-cell
scripts $(cat "$HERE/dom0/afs/cell.sh" "$HERE/dom0/afs/make-cell.sh" "$HERE/host/build-afs.sh" | sha256sum | cut -d' ' -f1)
$afs_want
$afs_tools"
afs_cell=$(cache_entry afs-cell "$afs_recipe" afs_make_cell "$root")
cache_prune afs-cell 4 # one per Xen version, and their predecessors
tar -xf "$afs_cell/cell.tar" -C "$root"
echo "afs: cell from $afs_cell"

# 5. The OpenAFS client (cache kind openafs-ko): XEN_TEST_AFS_OPENAFS=1 builds it. Debian 12's
# kernel only (openafs-modules-dkms of bookworm against its headers); kAFS alone on 4.20.
if [ -n "${SYSROOT:-}" ]; then
  echo "afs: no OpenAFS client on Xen $XEN (kAFS only)"
  return 0
fi
afs_ko_want=$(afs_policy openafs-modules-dkms "linux-headers-$kver")
afs_ko_recipe="afsfile xen test openafs-ko
kernel $kver
script $(sha256sum "$HERE/host/build-openafs-ko.sh" | cut -d' ' -f1)
$afs_ko_want"
afs_ko_key=$(cache_key "$afs_ko_recipe")
afs_ko_dir=$(cache_root)/openafs-ko/$afs_ko_key
if [ "${XEN_TEST_AFS_OPENAFS:-0}" = 1 ] || [ -e "$afs_ko_dir/.done" ]; then
  afs_ko_dir=$(cache_entry openafs-ko "$afs_ko_recipe" "$HERE/host/build-openafs-ko.sh" "$kver")
  add_file "$root" "$afs_ko_dir/openafs.ko" /xentest/afs/openafs.ko
  strip --strip-debug "$root/xentest/afs/openafs.ko" # 28 MB of debug info otherwise
  echo "afs: OpenAFS client included ($afs_ko_dir)"
else
  echo "afs: no openafs.ko (XEN_TEST_AFS_OPENAFS=1 builds it into openafs-ko/$afs_ko_key): OpenAFS client stages skip"
fi
