#!/bin/sh
# Issue 17: two guests of two tenants at once, each disk served with its domain's identity.
# Each guest writes and verifies its pattern (xtio, FLUSH) on an image in its tenant's volume;
# while both run, dom0 checks the process model: each device process is a child of its
# identity's process, has no credential cache in its environment, and each identity's token is
# in its own session keyring only (a keyring, linked into a new session, reads its tenant's
# image and not the other's). A guest of tenant b whose disk names an image of tenant a is
# refused with the hotplug error xl shows: it names the domain, the identity's label and the
# image, never the principal (guests can read that key); the principal is in the hotplug log.
# Then the pattern of each guest is checked in its namei file on the server.
. /xentest/lib.sh
. /xentest/afs/lib.sh
. /xentest/afs/ident.sh

afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile renew/worker is not running"; }
[ -f "$(ident_status tenant-a)" ] || fail "no identity tenant-a (afs-ident-setup)"
# Small images: /vicepa lives in dom0's memory with the other stages' images.
SEQ_MB=4 BUF_MB=2 RAND_MB=1 RAND_OPS=128
functional_io
from=$(($(wc -l < "$AFSFILE_LOG") + 1))
img_a=$(ident_dir a)/xt-ta.img img_b=$(ident_dir b)/xt-tb.img
# Sizes of their own: the namei files are found by size.
mb_a=$((SEQ_MB + BUF_MB + RAND_MB + 4)) mb_b=$((SEQ_MB + BUF_MB + RAND_MB + 6))
# Fresh images (a rerun must not find the last run's pattern; xtio checks unwritten blocks are zero).
afs_admin rm -f "$img_a" "$img_b" "$(ident_dir a)/xt-ta-spare.img" "$(ident_dir b)/xt-tb-spare.img"
t0=$(now_s)
IMAGE_MB=$mb_a; afs_guest_begin xt-ta$IDENT_G "$img_a" 61
IMAGE_MB=$mb_b; afs_guest_begin xt-tb$IDENT_G "$img_b" 62
xt_step "both guests connected in $(($(now_s) - t0))s"

# The process model, while both devices run.
for t in a b; do
  label=$(ident_label "$t")
  opener=$(json_field "$(ident_status "$label")" pid)
  dpid=$(dev_pid "xt-t$t$IDENT_G")
  [ -n "$dpid" ] && kill -0 "$dpid" || fail "no device process for xt-t$t"
  [ "$(ppid_of "$dpid")" = "$opener" ] || fail "xt-t$t's device process $dpid is a child of $(ppid_of "$dpid"), not of identity $label's process $opener"
  tr '\0' '\n' < "/proc/$dpid/environ" > /run/xentest/ident-env-$t
  grep -q '^KRB5CCNAME=\|krb5cc' /run/xentest/ident-env-$t && fail "xt-t$t's device process has a credential cache in its environment"
  grep -q "^AFSFILE_IDENTITY=$label$" /run/xentest/ident-env-$t || fail "xt-t$t's device process does not say identity $label"
  grep -q '^KRB5CCNAME=' "/proc/$opener/environ" 2>/dev/null && fail "identity $label's process has KRB5CCNAME"
  xt_step "xt-t$t: device process $dpid, child of identity $label's process $opener; no credential cache in its environment"
done
# Tokens in the dom0's session keyrings: one per keyring, in three keyrings (the host
# identity's, each tenant's); tenant b's the one with minutes to live.
if [ "$AFS_CLIENT" = kafs ]; then
token_keyrings > /run/xentest/ident-rings
show "session keyrings with kAFS tokens (keyring tokens lifetimes)" /run/xentest/ident-rings
awk '$2 != 1' /run/xentest/ident-rings | grep -q . && fail "a session keyring holds more than one token"
[ "$(grep -c . /run/xentest/ident-rings)" -ge 3 ] || fail "expected the host's and each tenant's token in keyrings of their own"
xt_step "$(grep -c . /run/xentest/ident-rings) session keyrings hold a kAFS token, one each"
else
  xt_step "OpenAFS: tokens are per PAG inside the client (no keyring census); the refusals below check each identity's rights"
fi

# Each identity's processes hold only its own rights: a guest of one tenant naming the other's
# image, and an unbound guest (the host identity) naming a tenant's, are refused.
spare_a=$(ident_dir a)/xt-ta-spare.img spare_b=$(ident_dir b)/xt-tb-spare.img
afs_admin sh -c "dd if=/dev/zero of=$spare_a bs=1048576 seek=4 count=1 && dd if=/dev/zero of=$spare_b bs=1048576 seek=5 count=1" > /run/xentest/ident-dd.out 2>&1 ||
  { show dd /run/xentest/ident-dd.out; df -m / /vicepa; fail "cannot create the spare images"; }
ident_refused xt-tb-x$IDENT_G "$spare_a" tenant-b "$(ident_princ b)"
ident_refused xt-ta-x$IDENT_G "$spare_b" tenant-a "$(ident_princ a)"
ident_refused xt-host-x "$spare_a" host

IMAGE_MB=$mb_a; afs_guest_end xt-ta$IDENT_G "$img_a" 61
IMAGE_MB=$mb_b; afs_guest_end xt-tb$IDENT_G "$img_b" 62
xt_step "both tenants' patterns are on the server"
afs_worker_errors "$from" > /run/xentest/ident-errors
show "worker: held/failed I/O" /run/xentest/ident-errors
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile worker died"; }
afs_admin rm -f "$img_a" "$img_b" "$spare_a" "$spare_b"
exit 0
