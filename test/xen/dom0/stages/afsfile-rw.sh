#!/bin/sh
# The baseline workload through afsfile: script=block-afsfile on a file.
. /xentest/lib.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker is not running"; }
img=$IMAGES/a.img
make_image "$img"
guest_run xt-afs "vdev=xvda,access=rw,$AFS_SPEC,target=$img" 2
verify_image "$img" 2
# With AFSFILE_WORKER_ENV (an experiment: another mechanism, more DEBUG), show what the device
# process said, so a passing run tells which variant it measured.
if [ -n "$AFSFILE_WORKER_ENV" ]; then
  grep -v '^\s*$' "$AFSFILE_LOG" | grep 'afsfile:evtchn\|afsfile:timing' | tail -n 40 | sed 's/^/  [afsfile log] /'
fi
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died during the stage"; }
exit 0
