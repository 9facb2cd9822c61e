#!/bin/bash
# Build afslock (afslock.c), the user-space second AFS client of the afs-lock-openafs stages,
# against Debian 12's libopenafs-dev (1.8): libafscp (its callback service), the Rx stubs of
# libafsint, libafsauthent (tokens, the server's keys), libafsrpc. Those static libraries were
# built with Heimdal's Kerberos (libafscp refers to it; afslock never calls it): linked with the
# Heimdal libraries openafs-client depends on. On Xen 4.17 dom0 runs the host's programs
# (host/build-afs.sh copies it with its libraries).
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
L=/usr/lib/x86_64-linux-gnu
gcc -O2 -Wall -o "$out" "$here/afslock.c" \
  /usr/lib/libafscp.a /usr/lib/afs/libafsint.a /usr/lib/libafsauthent.a /usr/lib/libafsrpc.a /usr/lib/afs/util.a \
  "$L/libkrb5.so.26" "$L/libhcrypto.so.5" "$L/libroken.so.19" "$L/libcom_err.so.2" -lpthread -lresolv
