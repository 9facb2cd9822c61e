#!/bin/bash
# Print the path of an executable that runs the xenstored of a Xen platform's
# Debian root (host/platform.sh; 4.20: Debian 13's, with Debian 13's loader
# and libraries), for the unit tests' real peer:
#   AFSFILE_TEST_XENSTORED=$(bash test/xen/host/xenstored-wrapper.sh 4.20) npm test
# The tests' LD_PRELOAD stub (test/xenstored/xenstored-stub.c) is passed on by
# the loader. Usage: xenstored-wrapper.sh 4.20
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export HERE
. "$HERE/host/cache.sh"
xen=${1:?usage: xenstored-wrapper.sh 4.20}
platform=$("$HERE/host/platform.sh" "$xen")
sys=$platform/sysroot
[ -x "$sys/usr/lib/xen-$xen/bin/xenstored" ] || { echo "xenstored-wrapper: no xenstored in $sys (only platforms with a Debian root have one)" >&2; exit 1; }
out=$(cache_root)/xenstored-$xen
cat > "$out.tmp" <<WRAP
#!/bin/sh
exec $sys/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path $sys/usr/lib/x86_64-linux-gnu $sys/usr/lib/xen-$xen/bin/xenstored "\$@"
WRAP
chmod 755 "$out.tmp" && mv "$out.tmp" "$out"
echo "$out"
