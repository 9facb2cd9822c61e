#!/bin/sh
# Start the Xen daemons of dom0 and check that the toolstack works.
. /xentest/lib.sh

grep -q control_d /proc/xen/capabilities 2>/dev/null || fail "not a control domain (/proc/xen/capabilities: $(cat /proc/xen/capabilities 2>&1))"
for d in /dev/xen/evtchn /dev/xen/gntdev /dev/xen/privcmd; do
  [ -e "$d" ] || fail "$d is missing"
done

xenstored --pid-file /run/xenstored.pid || fail "xenstored did not start"
wait_until 10 test -S /run/xenstored/socket || fail "no xenstored socket"
xt_step "xenstored up"
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console || fail "xenconsoled did not start"
xen-init-dom0 || fail "xen-init-dom0 failed"
xt_step "xen-init-dom0 done"

xl list > /run/xentest/xl-list 2>&1 || { show "xl list" /run/xentest/xl-list; fail "xl list failed"; }
grep -q '^Domain-0' /run/xentest/xl-list || fail "xl list shows no Domain-0"
xl info | grep -E '^(xen_version|nr_cpus|total_memory|free_memory|xen_commandline)' | sed 's/^/  [xl info] /'
lsmod | grep -q '^xen_blkback' || fail "xen-blkback is not loaded"
