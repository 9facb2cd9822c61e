#!/bin/sh
# The worker under `afsfile renew`: tickets from its keytab, an aklog-kafs token in its own
# session keyring (kAFS's PAG), verified by renew. A root shell outside that keyring must get
# EACCES on the volume: the token is the worker's alone.
. /xentest/lib.sh
. /xentest/afs/lib.sh

if afsfile_worker_alive; then # the plain worker of afsfile-setup
  kill "$(cat "$AFSFILE_PIDFILE")"
  wait_until 20 sh -c "! kill -0 $(cat "$AFSFILE_PIDFILE") 2>/dev/null" || fail "the plain worker did not stop"
fi
img=$AFS_DIR/xt-acl-$AFS_CLIENT.img
afs_admin dd if=/dev/zero of=$img bs=4096 count=1 2>/dev/null || fail "the administrator cannot create $img"
t0=$(now_s)
: > "$AFSFILE_LOG"
afs_start_renew_worker || fail "renew got no token in 60 s"
xt_step "renew: tickets and a verified token in $(($(now_s) - t0))s"
show renew.json /run/afsfile/status/renew.json
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "renew/worker exited"; }

# Outside the worker's keyring: anonymous, no rights.
afs_anonymous dd if=$img of=/dev/null bs=4096 count=1 > /run/xentest/anon.out 2>&1 && fail "a root shell without the token read $img"
show anonymous /run/xentest/anon.out
grep -q "Permission denied" /run/xentest/anon.out || fail "expected EACCES for root outside the PAG: $(cat /run/xentest/anon.out)"
xt_step "root outside the worker's keyring: EACCES on $img"
"$AFSFILE" check > /run/xentest/check.log 2>&1
show "afsfile check" /run/xentest/check.log
exit 0
