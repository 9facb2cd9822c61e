#!/bin/sh
# Issue 17: one Kerberos identity per guest domain, on the test cell. Two tenants, each with a
# principal and a keytab (made here in the cell's KDC, as an administrator would), a volume of
# its own whose ACL gives only that tenant rlidwk, and an afsfile identity bound to its guests'
# domain names (xt-ta, xt-ta-x / xt-tb, xt-tb-x), added to the running worker by SIGHUP. Tenant
# b's principal may hold tickets for IDENT_B_LIFETIME s only, so its identity renews often and
# its token can be let lapse (afs-ident-expiry). Each identity must get its own token.
. /xentest/lib.sh
. /xentest/afs/lib.sh
. /xentest/afs/ident.sh

case $XT_STAGE in
  *openafs*) [ "$AFS_CLIENT" = openafs ] || fail "$XT_STAGE needs the OpenAFS client (afs-openafs-client)" ;;
  *) [ "$AFS_CLIENT" = kafs ] || fail "$XT_STAGE runs on kAFS (this boot switched to $AFS_CLIENT)" ;;
esac
afsfile_worker_alive || { show afsfile "$AFSFILE_LOG"; fail "afsfile renew/worker is not running"; }
t0=$(now_s)
for t in $IDENT_TENANTS; do
  ident_make_tenant "$t" || fail "cannot make tenant $t's principal, keytab or volume"
done
kadmin.local -q "modprinc -maxlife \"$IDENT_B_LIFETIME seconds\" $(ident_princ b)" > /dev/null ||
  fail "cannot limit $(ident_princ b)'s ticket lifetime"
xt_step "principals, keytabs, pts users and volumes of tenants $IDENT_TENANTS in $(($(now_s) - t0))s"
for t in $IDENT_TENANTS; do
  ident_mount_tenant "$t" > /run/xentest/ident-acl-$t.out 2>&1 || { show acl /run/xentest/ident-acl-$t.out; fail "cannot mount or set the ACL of tenant $t's volume"; }
  show "tenant $t ACL" /run/xentest/ident-acl-$t.out
  grep -q "$(ident_pts "$t")" /run/xentest/ident-acl-$t.out || fail "the ACL of $(ident_dir "$t") does not name $(ident_pts "$t")"
done
df -m / | sed 's/^/  [df] /'
xt_step "volumes at $(ident_dir a) and $(ident_dir b), each tenant rlidwk on its own only"

from=$(($(wc -l < "$AFSFILE_LOG") + 1))
ident_config
grep '^identity' "$IDENT_CONF" | sed 's/^/  [afsfile.conf] /'
pid=$(worker_pid)
[ -n "$pid" ] && kill -0 "$pid" || fail "no worker pid in status/worker.json"
t1=$(now_s)
kill -HUP "$pid"
for t in $IDENT_TENANTS; do
  ident_wait_success "$(ident_label "$t")" 60 || {
    tail -n +"$from" "$AFSFILE_LOG" | tail -n 40 | sed 's/^/  [afsfile] /'
    show "identity $t" "$(ident_status "$(ident_label "$t")")"
    fail "identity $(ident_label "$t") got no token within 60 s of the reload"; }
done
xt_step "SIGHUP: both identities renewed (tickets and verified tokens) in $(($(now_s) - t1))s"
tail -n +"$from" "$AFSFILE_LOG" | grep -i 'identity\|SIGHUP' | head -n 20 | sed 's/^/  [afsfile] /'
show "identity-tenant-b.json" "$(ident_status tenant-b)"
"$AFSFILE" status > /run/xentest/ident-status.out 2>&1
show "afsfile status" /run/xentest/ident-status.out
grep -q 'tenant-a' /run/xentest/ident-status.out && grep -q 'tenant-b' /run/xentest/ident-status.out ||
  fail "afsfile status does not show both identities"
exp=$(json_field "$(ident_status tenant-b)" ticketExpires)
xt_metric "ident_reload_to_tokens_s=$(($(now_s) - t1)) ident_b_ticket_expires=$exp"
exit 0
