#!/bin/sh
# Dev mode (test/xen/dev.mjs): dom0 stays booted and runs stages on request.
# The host's repository is shared read-only over 9p (virtio, mount tag
# `repo`); before every request the stage scripts, lib.sh, stages.txt,
# install.sh and dist/afsfile are copied from it, so a rerun uses the working
# tree as it is now, without a new boot. Requests come on the console, one a
# line (the host writes them to QEMU's serial input):
#   RUN <id> <stage,stage,...>   run these stages (markers as in a normal run),
#                                then print "XENDEV DONE <id> rc=<n>"
#   QUIT                         power off
# Passed stages are remembered across requests (requirements stay satisfied);
# afsfile-setup restarts the worker when run again.
. /xentest/lib.sh

for m in virtio_pci 9pnet_virtio 9p; do modprobe "$m" || echo "dev: modprobe $m failed"; done
mkdir -p /share
# msize: 9p's default (8 KiB) makes copying the 110 MB executable take minutes under TCG.
if ! mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=none,msize=262144 repo /share; then
  echo "XENDEV FAIL cannot mount the host's tree (9p tag repo)"
  exit 1
fi
stty -echo 2>/dev/null # the console would echo the requests back

# The size and time of the last afsfile copied: an unchanged executable is not read again.
synced=
sync_tree() {
  local src=/share/test/xen f stamp
  # Not dev-loop.sh: this shell is reading it (a change to it needs a new boot).
  for f in "$src"/dom0/lib.sh "$src"/dom0/run-stages.sh; do cp "$f" /xentest/; done
  rm -rf /xentest/stages.new && cp -r "$src/dom0/stages" /xentest/stages.new && rm -rf /xentest/stages && mv /xentest/stages.new /xentest/stages
  cp "$src/stages.txt" /xentest/stages.txt
  [ -d "$src/dom0/afs" ] && mkdir -p /xentest/afs && cp "$src"/dom0/afs/*.sh /xentest/afs/
  chmod 755 /xentest/*.sh /xentest/stages/*.sh
  stamp=$(stat -c '%s %Y' /share/dist/afsfile 2>/dev/null)
  if [ -f /share/dist/afsfile ] && { [ -z "$stamp" ] || [ "$stamp" != "$synced" ]; } &&
    ! cmp -s /share/dist/afsfile "$AFSFILE"; then
    # A new file, renamed over the old: a running worker keeps its executable.
    mkdir -p "$(dirname "$AFSFILE")" /xentest/afsfile/dist
    cp /share/dist/afsfile "$AFSFILE.new" && chmod 755 "$AFSFILE.new" && mv "$AFSFILE.new" "$AFSFILE"
    ln -sf "$AFSFILE" /xentest/afsfile/dist/afsfile
    echo "dev: afsfile updated from the host ($(sha256sum "$AFSFILE" | cut -c1-12))"
  fi
  synced=$stamp
  [ -f /share/install.sh ] && cp /share/install.sh /xentest/afsfile/install.sh && chmod 755 /xentest/afsfile/install.sh
  return 0
}

echo "XENDEV READY"
while read -r cmd id list; do
  case $cmd in
    RUN)
      sync_tree
      XENTEST_ONLY=$list XENTEST_PASSED_FILE=/run/xentest/passed /xentest/run-stages.sh
      echo "XENDEV DONE $id rc=$?"
      ;;
    QUIT) break ;;
    '') ;;
    *) echo "XENDEV FAIL unknown request: $cmd" ;;
  esac
done
cleanup_domains
exit 0
