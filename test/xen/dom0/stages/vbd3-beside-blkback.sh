#!/bin/sh
# The tap route beside kernel blkback, at once: guest xt-mix has xvda through
# afsfile (backendtype=tap,script=block-afsfile: backend/vbd3) and xvdb through
# blkback (hot-added, the stock `block` script on a loop device: backend/vbd); guest
# xt-mix2 has one blkback disk. While both run, each backend must hold exactly
# its own devices: blkback's driver is bound to the vbd ones only, afsfile has
# device processes and status files for the vbd3 one only, only the blkback
# images are on loop devices. Both guests hold their disks (xt.hold) until dom0
# has checked all that and detaches them: a guest done with its workload would
# otherwise power off, taking its backends with it, before the checks (it did,
# under TCG: starting xt-mix2 took longer than xt-mix's two workloads). Then
# detaching the vbd3 disk leaves xt-mix's blkback disk alone: the guest reads it
# again after the detach (XT DEV2-ALIVE). Both guests' workloads pass, dom0
# checks all three images.
AFS_ROUTE=vbd3 # lib.sh: AFS_SPEC is backendtype=tap,script=block-afsfile
. /xentest/lib.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker is not running"; }
lsmod | grep -q '^xen_blkback' || fail "xen-blkback is not loaded"
functional_io
a=$IMAGES/m-afs.img b=$IMAGES/m-blk.img c=$IMAGES/m-blk2.img
for i in "$a" "$b" "$c"; do make_image "$i"; done
XVDB=51728
# The blkback disk is hot-added after the guest booted on its afsfile disk:
# with both in the config, libxl runs block-afsfile and the stock block
# script at once, and under TCG on a busy host (load 13) the block script
# overran libxl's 40 s hotplug timeout. The guest writes xvda, then waits
# for xvdb (xt.dev2) and writes it.
hold="xt.hold=$GUEST_TIMEOUT"
guest_start xt-mix "vdev=xvda,access=rw,$AFS_SPEC,target=$a" 31 "xt.dev2=xvdb xt.seed2=32 xt.wait=$BOOT_TIMEOUT $hold"
d=$(guest_domid xt-mix)
out=/run/xentest/xt-mix.attach
timeout 120 xl block-attach xt-mix "vdev=xvdb,access=rw,target=$b" > "$out" 2>&1 || {
  show "xl block-attach" "$out"
  guest_fail xt-mix "/local/domain/0/backend/vbd/$d/$XVDB" "xl block-attach of the blkback disk failed: $(create_error "$out")"
}
guest_connect xt-mix $XVDB
GUEST_CONNECT=no
guest_start xt-mix2 "vdev=xvda,access=rw,target=$c" 33 "$hold"
e=$(guest_domid xt-mix2)
guest_connect xt-mix2

t=/local/domain/0/backend/vbd3/$d/$XVDA   # afsfile's
k=/local/domain/0/backend/vbd/$d/$XVDB    # blkback's, same guest
k2=/local/domain/0/backend/vbd/$e/$XVDA   # blkback's, other guest
for p in "$t" "$k" "$k2"; do xenstore-exists "$p" || guest_fail xt-mix "$p" "$p is missing"; done
for p in "/local/domain/0/backend/vbd/$d/$XVDA" "/local/domain/0/backend/vbd3/$e"; do
  xenstore-exists "$p" && guest_fail xt-mix "$p" "$p exists: a disk went to the wrong backend kind"
done
[ "$(xsr "$t/params")" = "aio:$a" ] || guest_fail xt-mix "$t" "vbd3 params is '$(xsr "$t/params")', not aio:$a"
[ "$(xsr "$t/type")" = vbd3 ] || guest_fail xt-mix "$t" "vbd3 type is '$(xsr "$t/type")'"
xt_step "xenstore: $t (params aio:..., type vbd3), $k and $k2 (type $(xsr "$k/type"))"

# Kernel blkback: bound to its two devices, not to the vbd3 one.
sysdev=/sys/bus/xen-backend/devices
for dev in "vbd-$d-$XVDB" "vbd-$e-$XVDA"; do
  [ "$(basename "$(readlink "$sysdev/$dev/driver" 2>/dev/null)")" = vbd ] ||
    guest_fail xt-mix "$k" "kernel blkback does not serve $dev ($(ls "$sysdev" | tr '\n' ' '))"
done
[ -e "$sysdev/vbd3-$d-$XVDA/driver" ] && guest_fail xt-mix "$t" "a kernel driver is bound to vbd3-$d-$XVDA"
[ -n "$(xsr "$k/physical-device")" ] || guest_fail xt-mix "$k" "the block script wrote no physical-device for $k"
[ -n "$(xsr "$t/physical-device")" ] && guest_fail xt-mix "$t" "$t has a physical-device (the block script ran on it?)"
loops=$(/usr/sbin/losetup -a)
echo "$loops" | grep -q "$b" && echo "$loops" | grep -q "$c" || guest_fail xt-mix "$k" "the blkback images are not on loop devices: $loops"
echo "$loops" | grep -q "$a" && guest_fail xt-mix "$t" "afsfile's image is on a loop device: $loops"
xt_step "blkback serves vbd-$d-$XVDB and vbd-$e-$XVDA (loop devices), not vbd3-$d-$XVDA"

# afsfile: a device process and a status file for the vbd3 device only.
st=/run/afsfile/status
[ -f "$st/dev-$d-$XVDA.json" ] || guest_fail xt-mix "$t" "no afsfile status file for $t"
for f in "dev-$d-$XVDB.json" "dev-$e-$XVDA.json"; do
  [ -e "$st/$f" ] && guest_fail xt-mix "$k" "afsfile has a status file $f for a blkback device"
done
# The process that wrote it (a spare assigned the device, or one started with --device) runs.
pid=$(sed -n 's/^  "pid": \([0-9]*\),*$/\1/p' "$st/dev-$d-$XVDA.json")
tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- 'worker --\(device\|spare\)' ||
  guest_fail xt-mix "$t" "no afsfile device process for $t (status pid ${pid:-none})"
grep -l '"backend": "[^"]*/backend/vbd/' "$st"/dev-*.json 2>/dev/null | grep -q . &&
  guest_fail xt-mix "$k" "an afsfile device process serves a backend/vbd device"
xt_step "afsfile serves $t only"

# detach NAME VDEV BACKEND: the guest is done (XT HOLD), xl block-detach, the
# backend directory goes, the guest sees the disk go.
detach() {
  guest_wait_line "$1" '^XT HOLD' "$GUEST_TIMEOUT"
  timeout 60 xl block-detach "$1" "$2" > "/run/xentest/$1.detach" 2>&1 || {
    show "xl block-detach" "/run/xentest/$1.detach"
    guest_fail "$1" "$3" "xl block-detach $1 $2 failed: $(tail -n 1 "/run/xentest/$1.detach")"
  }
  wait_until 20 xs_gone "$3" || guest_fail "$1" "$3" "backend $3 still there 20s after xl block-detach"
  guest_wait_line "$1" "^XT DETACHED /dev/$2" 60
  xt_step "$1: xl block-detach $2 removed $3"
}
detach xt-mix2 xvda "$k2"
guest_wait xt-mix2
verify_image "$c" 33
detach xt-mix xvda "$t"
# The guest itself reads xvdb again (O_DIRECT, same md5 as before) after xvda
# went, then powers off, which closes xvdb: so blkback's state is judged from
# the guest's line, not read from xenstore here.
guest_wait_line xt-mix '^XT DEV2-ALIVE' 60
xt_step "xt-mix: $(guest_log xt-mix | sed -n 's/^XT DEV2-ALIVE //p')"
guest_wait xt-mix
# Two XTIO RESULT lines: xvda (afsfile) first, then xvdb (blkback).
results=$(guest_log xt-mix | sed -n 's/^XTIO RESULT //p')
[ "$(echo "$results" | wc -l)" -eq 2 ] || fail "expected two XTIO RESULT lines from xt-mix, got: $results"
GUEST_RAND_WRITTEN=$(echo "$results" | head -n 1 | tr ' ' '\n' | sed -n 's/^rand_write_blocks=//p')
verify_image "$a" 31
GUEST_RAND_WRITTEN=$(echo "$results" | tail -n 1 | tr ' ' '\n' | sed -n 's/^rand_write_blocks=//p')
verify_image "$b" 32
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died during the stage"; }
rm -f "$a" "$b" "$c"
exit 0
