#!/bin/sh
# An aborted xl migrate: the destination gets the guest's image (attached without the lock,
# deferred to its connect) and a second disk whose image does not exist, so its creation
# fails after the stream has arrived; xl resumes the source. The source keeps its image lock
# (afsfile status: held, the same process) and its guest finishes its workload without an
# I/O error; dom0 verifies the image.
. /xentest/lib.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker is not running"; }
functional_io
img=$IMAGES/mab.img
seed=23
make_image "$img"
GUEST_MEMORY=128
guest_start xt-mab "vdev=xvda,access=rw,$AFS_SPEC,target=$img" $seed "xt.mode=save"
first=$(guest_domid xt-mab)
be1=$(backend_of xt-mab)
guest_wait_line xt-mab '^XT SAVE-READY' "$GUEST_TIMEOUT"
pid1=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "/run/afsfile/status/dev-$first-$XVDA.json" | head -n 1)

# The destination's config: the same disk, and one that cannot be attached.
guest_cfg xt-mab "vdev=xvda,access=rw,$AFS_SPEC,target=$img" $seed "xt.mode=save" |
  sed "s|^disk = \[\(.*\)\]|disk = [\1, 'vdev=xvdb,access=rw,$AFS_SPEC,target=$IMAGES/missing-mab.img']|" \
  > /run/xentest/xt-mab.dest.cfg
grep -q missing-mab /run/xentest/xt-mab.dest.cfg || fail "cannot make the destination's config"
xt_step "xl migrate -C (a disk that fails) -s '' xt-mab 'xl migrate-receive -e'"
if timeout 300 xl migrate -C /run/xentest/xt-mab.dest.cfg -s "" xt-mab "xl migrate-receive -e" \
  > /run/xentest/xt-mab.migrate 2>&1; then
  show "xl migrate" /run/xentest/xt-mab.migrate
  fail "the migration succeeded although the destination's second disk cannot be attached"
fi
show "xl migrate" /run/xentest/xt-mab.migrate
d=$(xl domid xt-mab) || fail "the source xt-mab is gone after the aborted migration"
[ "$d" = "$first" ] || fail "xt-mab is domid $d, not the source $first"
wait_until 30 sh -c '! xl domid xt-mab--incoming >/dev/null 2>&1' || fail "the destination is still there"
xt_step "migration aborted; the source (domid $first) runs on"
"$AFSFILE" status > /run/xentest/xt-mab.status 2>&1
show "afsfile status" /run/xentest/xt-mab.status
grep -q "ex held .*$img" /run/xentest/xt-mab.status || fail "the source no longer holds the image lock"
pid2=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "/run/afsfile/status/dev-$first-$XVDA.json" | head -n 1)
[ "$pid1" = "$pid2" ] || fail "the source's device process changed ($pid1 -> $pid2): its lock was not kept"
image_mark "$img" XTGO || fail "cannot mark $img"
guest_wait xt-mab
verify_image "$img" $seed
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died during the stage"; }
rm -f "$img"
exit 0
