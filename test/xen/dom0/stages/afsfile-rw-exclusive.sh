#!/bin/sh
# An image afsfile serves read-write to one guest is given to nobody else: a
# second guest with the same image (xl create) and an `xl block-attach` of it
# (read-only, to the running guest) are both refused, and xl prints the
# hotplug error, which names the image. The first guest's I/O is unharmed.
. /xentest/lib.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker is not running"; }
functional_io
img=$IMAGES/x.img
make_image "$img"
spec="$AFS_SPEC,target=$img"

# refused WHAT OUTPUT-FILE: the attach must have failed with a hotplug error naming the image.
refused() {
  local err
  show "$1" "$2"
  err=$(grep -m1 'script: ' "$2" | sed 's/.*script: //')
  [ -n "$err" ] || fail "$1 failed without a hotplug error from xl: $(tail -n 1 "$2")"
  case $err in
    *"$img"*) xt_step "$1 refused, xl shows: $err" ;;
    *) fail "the hotplug error xl shows for $1 does not name $img: $err" ;;
  esac
}

# The first guest: its workload, then it waits until its disk is detached.
guest_start xt-excl-a "vdev=xvda,access=rw,$spec" 5 "xt.hold=150"
domid=$(guest_domid xt-excl-a)

# 1. A second guest with the same image, read-write.
guest_cfg xt-excl-b "vdev=xvda,access=rw,$spec" 6 > /run/xentest/xt-excl-b.cfg
out=/run/xentest/xt-excl-b.create
xt_step "xl create xt-excl-b with the same image, rw"
if timeout 60 xl create /run/xentest/xt-excl-b.cfg > "$out" 2>&1; then
  show "xl create" "$out"
  timeout 30 xl destroy xt-excl-b
  fail "a second guest was created with $img read-write while xt-excl-a has it"
fi
refused "xl create xt-excl-b" "$out"
wait_until 20 sh -c '! xl domid xt-excl-b >/dev/null 2>&1' || fail "xl left the refused domain xt-excl-b behind"

# 2. The same image again, read-only, hot-attached to the running guest.
out=/run/xentest/xt-excl-attach.out
xt_step "xl block-attach xt-excl-a xvdb: the same image, ro"
if timeout 60 xl block-attach xt-excl-a "vdev=xvdb,access=ro,$spec" > "$out" 2>&1; then
  show "xl block-attach" "$out"
  fail "xl block-attach of $img (ro) succeeded while xt-excl-a has it read-write"
fi
refused "xl block-attach" "$out"
# libxl leaves a refused hot-added device in xenstore (it cleans up only on
# removal); afsfile must not serve it, and xl block-detach must remove it.
be=/local/domain/0/backend/$AFS_KIND/$domid/51728
xt_step "left by libxl: $be state=$(xsr "$be/state") hotplug-status=$(xsr "$be/hotplug-status") afsfile-status=$(xsr "$be/afsfile-status")"
[ "$(xsr "$be/state")" = 4 ] && fail "afsfile connected the refused $be"
[ "$(xsr "$be/afsfile-status")" = opened ] && fail "the afsfile worker opened the image for the refused $be"
timeout 60 xl block-detach xt-excl-a xvdb > "$out" 2>&1 || { show "xl block-detach xvdb" "$out"; fail "xl block-detach of the refused xvdb failed"; }
show "xl block-detach xvdb" "$out"
wait_until 20 xs_gone "$be" || fail "the refused xvdb's backend directory is still there after xl block-detach"
xt_step "the refused xvdb is gone after xl block-detach"

# The first guest still works: it finishes its workload, its disk is detached,
# it powers off; dom0 checks its pattern.
guest_wait_line xt-excl-a '^XT HOLD' 150
xt_step "xl block-detach xt-excl-a xvda"
timeout 60 xl block-detach xt-excl-a xvda > /run/xentest/xt-excl-detach.out 2>&1 || {
  show "xl block-detach" /run/xentest/xt-excl-detach.out
  guest_fail xt-excl-a "$(backend_of xt-excl-a)" "xl block-detach xt-excl-a xvda failed"
}
guest_wait xt-excl-a
verify_image "$img" 5
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died during the stage"; }
rm -f "$img"
exit 0
