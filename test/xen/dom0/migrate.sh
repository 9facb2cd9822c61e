# Helpers of the migrate stages (busybox sh): a migration of a guest to this same host. Source
# this file after lib.sh.
#
# `xl migrate -s "" NAME "xl migrate-receive -e"` runs the receiver here (no ssh). It needs
# log-dirty mode for the live phase, which a PV guest gets only from shadow paging; Debian's Xen
# 4.17 and 4.20 hypervisors are built without it (their symbols have hap_enable_log_dirty and
# no shadow code; xen/arch/x86/mm/shadow/none.c answers EOPNOTSUPP), and PVH/HVM's log-dirty
# needs HAP, which QEMU's TCG does not give. xl then says "Failed to enable logdirty: 95" and
# resumes the source. The helpers then take the same steps in libxl's order without the live
# phase (tools/xl/xl_migrate.c, libxl_create.c): `xl save -p` stops the source suspended but
# not destroyed, devices attached (its image lock held); `xl restore` of the checkpoint as
# NAME--incoming with the source's uuid (the same VM, as migrate-receive names it) attaches the
# destination's disks and unpauses it; then the source is destroyed and the destination renamed.
MIGRATE_LOG=/run/xentest/migrate.out

# Whether an xl migrate output says the hypervisor cannot do log-dirty for this guest.
migrate_no_logdirty() { grep -q 'Failed to enable logdirty' "$1"; }

# The destination's config: guest NAME's (guest_cfg's file) named NAME$SUFFIX (migrate-receive
# adds --incoming itself; xl restore is given it), the same VM (its uuid), and an extra disk
# spec (one that fails) if given.
migrate_dest_cfg() { # migrate_dest_cfg NAME SUFFIX [EXTRA-DISK-SPEC]
  local uuid
  uuid=$(xsr "/local/domain/$(guest_domid "$1")/vm" | sed 's|^/vm/||')
  [ -n "$uuid" ] || fail "no vm path (uuid) for $1"
  sed -e "s/^name = .*/name = \"$1$2\"/" \
    -e "s|^disk = \[\(.*\) \]|disk = [\1${3:+, '$3'} ]|" "/run/xentest/$1.cfg"
  echo "uuid = \"$uuid\""
}

# migrate_here NAME: migrate guest NAME to this host (xl migrate, else its steps without the
# live phase); sets MIGRATE_HOW and MIGRATE_DESTROYED (uptime when the source was destroyed, or
# empty when xl did it). Fails the stage when the migration fails.
migrate_here() {
  local chk=/run/xentest/$1.chk cfg=/run/xentest/$1--incoming.cfg t
  MIGRATE_DESTROYED=
  xt_step "xl migrate -s '' $1 'xl migrate-receive -e' while the guest writes"
  if timeout 300 xl migrate -s "" "$1" "xl migrate-receive -e" > "$MIGRATE_LOG" 2>&1; then
    show "xl migrate" "$MIGRATE_LOG"
    MIGRATE_HOW="xl migrate"
    return 0
  fi
  show "xl migrate" "$MIGRATE_LOG"
  migrate_no_logdirty "$MIGRATE_LOG" || guest_fail "$1" "" "xl migrate failed"
  xl domid "$1" > /dev/null 2>&1 || fail "xl migrate failed and the source $1 is gone"
  xt_step "no live migration with this hypervisor (PV log-dirty: no shadow paging); libxl's steps without it"
  MIGRATE_HOW="xl save -p + xl restore as $1--incoming + xl destroy"
  migrate_dest_cfg "$1" --incoming > "$cfg"
  timeout 120 xl save -p "$1" "$chk" > "$MIGRATE_LOG" 2>&1 || {
    show "xl save -p" "$MIGRATE_LOG"; guest_fail "$1" "" "xl save -p failed"; }
  show "xl save -p" "$MIGRATE_LOG"
  xt_step "the source is suspended, its disk still attached; xl restore $1--incoming"
  timeout 120 xl restore "$cfg" "$chk" > "$MIGRATE_LOG" 2>&1 || {
    show "xl restore" "$MIGRATE_LOG"; rm -f "$chk"; timeout 30 xl destroy "$1"; fail "xl restore of the destination failed"; }
  show "xl restore" "$MIGRATE_LOG"
  rm -f "$chk"
  # xl migrate destroys the source once the destination runs, then renames the destination.
  read -r t rest < /proc/uptime
  MIGRATE_DESTROYED=$t
  timeout 60 xl destroy "$1" || fail "cannot destroy the source $1"
  xl rename "$1--incoming" "$1" || fail "cannot rename $1--incoming"
}

# migrate_reap NAME: destroys domain NAME once it has shut down, in the background. The xl
# that created it watches it and destroys it at its poweroff (on_poweroff), but a watcher that
# saw the checkpoint's suspend has exited (tools/xl/xl_vmcontrol.c handle_domain_death:
# "Domain has suspended", then "Done. Exiting now"): whether it saw it is a race with the
# resume (seen on 4.17 under load, not on 4.20). Without this the powered-off guest would stay.
migrate_reap() {
  local d
  d=$(xl domid "$1" 2>/dev/null) || return 0
  (
    while xenstore-exists "/local/domain/$d" 2>/dev/null; do
      case $(xl list "$d" 2>/dev/null | awk 'NR == 2 {print $5}') in
        *s*) sleep 2; xenstore-exists "/local/domain/$d" 2>/dev/null && timeout 30 xl destroy "$d" ;;
      esac
      sleep 1
    done
  ) > /dev/null 2>&1 &
}

# migrate_here_abort NAME EXTRA-DISK-SPEC: a migration whose destination cannot attach the extra
# disk (created after the stream has arrived); the source must run on. Sets MIGRATE_HOW.
migrate_here_abort() {
  local chk=/run/xentest/$1.chk cfg=/run/xentest/$1--incoming.cfg
  migrate_dest_cfg "$1" "" "$2" > "$cfg.C"
  migrate_dest_cfg "$1" --incoming "$2" > "$cfg"
  grep -q "$2" "$cfg" || fail "cannot make the destination's config"
  xt_step "xl migrate -C (a disk that fails) -s '' $1 'xl migrate-receive -e'"
  if timeout 300 xl migrate -C "$cfg.C" -s "" "$1" "xl migrate-receive -e" > "$MIGRATE_LOG" 2>&1; then
    show "xl migrate" "$MIGRATE_LOG"
    fail "the migration succeeded although the destination's second disk cannot be attached"
  fi
  show "xl migrate" "$MIGRATE_LOG"
  MIGRATE_HOW="xl migrate"
  migrate_no_logdirty "$MIGRATE_LOG" || return 0
  xt_step "no live migration with this hypervisor (PV log-dirty: no shadow paging); libxl's steps without it"
  MIGRATE_HOW="xl save -c + xl restore as $1--incoming"
  # -c: the source resumes after the checkpoint (as xl migrate resumes it after a failure).
  timeout 120 xl save -c "$1" "$chk" > "$MIGRATE_LOG" 2>&1 || {
    show "xl save -c" "$MIGRATE_LOG"; guest_fail "$1" "" "xl save -c failed"; }
  migrate_reap "$1"
  show "xl save -c" "$MIGRATE_LOG"
  if timeout 120 xl restore "$cfg" "$chk" > "$MIGRATE_LOG" 2>&1; then
    show "xl restore" "$MIGRATE_LOG"
    rm -f "$chk"
    fail "the destination was created although its second disk cannot be attached"
  fi
  show "xl restore" "$MIGRATE_LOG"
  rm -f "$chk"
}
