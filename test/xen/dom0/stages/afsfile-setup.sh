#!/bin/sh
# Install afsfile as the block-afsfile hotplug script, hand backend/vbd over to
# it (unload xen-blkback) and start `afsfile worker` in the background.
# Its output goes to /var/log/afsfile-worker.log (printed when a stage fails).
. /xentest/lib.sh

# Run again (dev mode): stop the worker this stage started before.
if afsfile_worker_alive; then
  old=$(cat "$AFSFILE_PIDFILE")
  kill -TERM "$old"
  wait_until 20 sh -c "! kill -0 $old 2>/dev/null" || kill -KILL "$old"
  xt_step "stopped the previous worker, pid $old"
fi

t0=$(now_s)
"$AFSFILE" version || fail "afsfile version failed"
xt_step "afsfile version ran in $(($(now_s) - t0))s"
if [ -f /xentest/afsfile/install.sh ]; then
  xt_step "install.sh $AFSFILE_INSTALL_ARGS"
  # Run from a copy of the repository layout (install.sh, dist/afsfile), by its
  # own #! line (bash is in dom0).
  (cd /xentest/afsfile && AFSFILE_BIN=$AFSFILE ./install.sh $AFSFILE_INSTALL_ARGS) > /run/xentest/install.log 2>&1
  rc=$?
  show install.sh /run/xentest/install.log
  [ $rc -eq 0 ] || fail "install.sh failed with status $rc"
else
  xt_step "no install.sh: linking /etc/xen/scripts/block-afsfile -> $AFSFILE"
  ln -sf "$AFSFILE" /etc/xen/scripts/block-afsfile
fi
[ -x /etc/xen/scripts/block-afsfile ] || fail "/etc/xen/scripts/block-afsfile is missing after install"
ls -l /etc/xen/scripts/block-afsfile | sed 's/^/  [install] /'

# AFSFILE_KEEP_BLKBACK=1 (vbd3-setup): the tap route, blkback stays.
if [ -z "$AFSFILE_KEEP_BLKBACK" ]; then
  if lsmod | grep -q '^xen_blkback'; then
    rmmod xen-blkback || fail "cannot unload xen-blkback"
  fi
  [ -d /sys/bus/xen-backend/drivers/vbd ] && fail "the kernel vbd backend driver is still registered"
  xt_step "xen-blkback unloaded"
fi

# The supervisor's and the devices' debug lines (claims, children, XenStore states)
# go to the log too: it is shown when a stage fails, and an intermittent failure
# is hard to explain without them. AFSFILE_WORKER_ENV (prepare.sh's environment) comes
# last, so it can override DEBUG too; the device children inherit it.
env DEBUG=afsfile:worker,afsfile:device $AFSFILE_WORKER_ENV setsid "$AFSFILE" $AFSFILE_WORKER_ARGS > "$AFSFILE_LOG" 2>&1 < /dev/null &
echo $! > "$AFSFILE_PIDFILE"
xt_step "afsfile $AFSFILE_WORKER_ARGS started${AFSFILE_WORKER_ENV:+ with $AFSFILE_WORKER_ENV}, pid $(cat "$AFSFILE_PIDFILE")"
sleep 3
if ! afsfile_worker_alive; then
  show afsfile "$AFSFILE_LOG"
  fail "afsfile worker exited at start"
fi
"$AFSFILE" check > /run/xentest/check.log 2>&1
echo "  [afsfile check] exit status $?"
show "afsfile check" /run/xentest/check.log
exit 0
