#!/bin/sh
# Makes the test cell once, on the host, in a chroot of the dom0 tree inside new network,
# mount and pid namespaces (test/xen/host/build-afs.sh): the KDC database with the cell key, the
# admin and worker principals and their keytabs, the ptdb (users, system:administrators), the
# VLDB and a /vicepa with the volumes root.afs, root.cell and images. Stops the servers cleanly
# so dom0 only has to start them. Nothing outside the chroot is written.
set -e
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
. /xentest/afs/cell.sh

afs_address lo # the host kernel: no dummy module loaded for this
mkdir -p /etc/krb5kdc /var/lib/krb5kdc /etc/openafs/server /var/lib/openafs/db /var/lib/openafs/local "$AFS_LOG" /vicepa /etc/afsfile /root
cat > /etc/krb5.conf <<KRB
[libdefaults]
  default_realm = $AFS_REALM
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  udp_preference_limit = 1
[realms]
  $AFS_REALM = {
    kdc = $AFS_ADDR:88
  }
[domain_realm]
  $AFS_CELL = $AFS_REALM
KRB
cat > /etc/krb5kdc/kdc.conf <<KDC
[kdcdefaults]
  kdc_listen = $AFS_ADDR:88
  kdc_tcp_listen = $AFS_ADDR:88
[realms]
  $AFS_REALM = {
    database_name = /var/lib/krb5kdc/principal
    key_stash_file = /etc/krb5kdc/stash
    acl_file = /etc/krb5kdc/kadm5.acl
    max_life = 10h
    max_renewable_life = 0
    supported_enctypes = aes256-cts-hmac-sha1-96:normal
  }
[logging]
  kdc = FILE:$AFS_LOG/krb5kdc.log
KDC
: > /etc/krb5kdc/kadm5.acl
kdb5_util create -s -r "$AFS_REALM" -P afstest-master-key > /dev/null
# min life: short token lifetimes (the expiry cases) are asked for by kinit -l.
kadmin.local -q "addprinc -randkey -e aes256-cts-hmac-sha1-96:normal afs/$AFS_CELL" > /dev/null
kadmin.local -q "addprinc -randkey $AFS_ADMIN" > /dev/null
kadmin.local -q "addprinc -randkey $AFS_WORKER_PRINC" > /dev/null
kadmin.local -q "ktadd -k /etc/openafs/server/rxkad.keytab -e aes256-cts-hmac-sha1-96:normal afs/$AFS_CELL" > /dev/null
kadmin.local -q "ktadd -k $AFS_ADMIN_KEYTAB $AFS_ADMIN" > /dev/null
kadmin.local -q "ktadd -k $AFS_WORKER_KEYTAB $AFS_WORKER_PRINC" > /dev/null

echo "$AFS_CELL" > /etc/openafs/server/ThisCell
printf '>%s #test cell\n%s #dom0\n' "$AFS_CELL" "$AFS_ADDR" > /etc/openafs/server/CellServDB
echo "$AFS_ADMIN" > /etc/openafs/server/UserList
cp /etc/openafs/server/ThisCell /etc/openafs/server/CellServDB /etc/openafs/
echo "$AFS_ADDR" > /var/lib/openafs/local/NetInfo
echo "$AFS_ADDR" > /etc/openafs/server/NetInfo
touch /vicepa/AlwaysAttach
# -localauth forges its tickets with a key of KeyFileExt: the cell key, converted.
akeyconvert -all

afs_start_kdc
afs_start_db
pts createuser "$AFS_ADMIN" -localauth
pts adduser "$AFS_ADMIN" system:administrators -localauth
pts createuser "$AFS_WORKER_PTS" -localauth
afs_start_fs
vos create "$AFS_ADDR" a root.afs -maxquota 0 -localauth
vos create "$AFS_ADDR" a root.cell -maxquota 0 -localauth
vos create "$AFS_ADDR" a "$AFS_VOLUME" -maxquota 0 -localauth
vos listvol "$AFS_ADDR" a -localauth
# The fileserver detaches its volumes cleanly on SIGQUIT (as bosserver stops it); after a
# SIGTERM they need the salvager before they attach again.
afs_stop volserver; afs_stop fileserver QUIT
for d in vlserver ptserver krb5kdc; do afs_stop "$d"; done
for f in "$AFS_LOG"/*.out; do [ -s "$f" ] && { echo "== $f"; tail -n 5 "$f"; }; done
echo "make-cell: done"
