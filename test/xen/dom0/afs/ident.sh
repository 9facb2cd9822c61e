# Helpers of the afs-ident-* stages (issue 17, one Kerberos identity per guest domain), on top
# of the test cell (afs/lib.sh): two tenants, each with a principal, a keytab, a volume of its
# own mounted under /afs-ident, and an afsfile identity bound to its guests' domain names.
# Tenant b's principal gets a short maximum ticket lifetime in the KDC, so that its identity
# renews every ~90 s and its token can be let expire (afs-ident-expiry) without touching a's.
# Source this file after /xentest/lib.sh and /xentest/afs/lib.sh.
IDENT_TENANTS="a b"
IDENT_ROOT=/afs-ident                # kAFS: tenant T's volume is mounted at $IDENT_ROOT/T
# Guest names: the OpenAFS client's stages (same boot, after the kAFS ones) use names of their
# own, so that no console log of an earlier guest of that name is read.
if [ "$AFS_CLIENT" = openafs ]; then IDENT_G=-o; else IDENT_G=; fi
IDENT_B_LIFETIME=${IDENT_B_LIFETIME:-180}
IDENT_CONF=/etc/xen/afsfile.conf

ident_princ() { echo "tenant/$1"; }                      # the Kerberos principal of tenant $1
ident_pts() { echo "tenant.$1"; }                        # its name in the protection database
ident_keytab() { echo "/etc/afsfile/tenant-$1.keytab"; }
ident_volume() { echo "tenant$1"; }
ident_label() { echo "tenant-$1"; }                      # the identity's label in afsfile.conf
# kAFS mounts each volume itself; the OpenAFS client (-dynroot) reaches it through a mount point
# in root.cell.
ident_dir() {
  if [ "$AFS_CLIENT" = openafs ]; then echo "/afs/$AFS_CELL/$(ident_volume "$1")"; else echo "$IDENT_ROOT/$1"; fi
}
# The JSON status file of identity LABEL, and one of its top-level string/number fields.
ident_status() { echo "/run/afsfile/status/identity-$1.json"; }
json_field() { # json_field FILE NAME: the value of "NAME": (string or number) on its own line
  sed -n "s/^  \"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$1" 2>/dev/null | head -n 1
}
worker_pid() { json_field /run/afsfile/status/worker.json pid; }

# The principal, pts user, keytab and volume of tenant $1 (again: a rerun finds them there).
ident_make_tenant() {
  local t=$1 princ kt vol
  princ=$(ident_princ "$t") kt=$(ident_keytab "$t") vol=$(ident_volume "$t")
  kadmin.local -q "getprinc $princ" 2>/dev/null | grep -q "^Principal: $princ@" ||
    kadmin.local -q "addprinc -randkey $princ" > /dev/null || return 1
  if [ ! -s "$kt" ]; then
    kadmin.local -q "ktadd -k $kt $princ" > /dev/null || return 1
  fi
  chmod 600 "$kt"
  pts examine "$(ident_pts "$t")" -localauth > /dev/null 2>&1 ||
    pts createuser "$(ident_pts "$t")" -localauth > /dev/null || return 1
  vos examine "$vol" -localauth > /dev/null 2>&1 ||
    vos create "$AFS_ADDR" a "$vol" -maxquota 0 -localauth > /dev/null || return 1
}

# Mounts tenant $1's volume (kAFS, with the administrator's token as afs-cell mounts the images
# volume) and gives its pts user rlidwk there; nobody else but system:administrators has rights.
ident_mount_tenant() {
  local t=$1 dir
  dir=$(ident_dir "$t")
  if [ "$AFS_CLIENT" = openafs ]; then
    afs_admin fs mkmount -dir "$dir" -vol "$(ident_volume "$t")" -cell "$AFS_CELL" 2>&1 | grep -v 'File exists'
    # l on root.cell's root: the tenant's identity looks its volume up through it.
    afs_admin fs setacl -dir "/afs/$AFS_CELL" -acl "$(ident_pts "$t")" l || return 1
    afs_admin fs setacl -dir "$dir" -acl "$(ident_pts "$t")" rlidwk || return 1
    afs_admin fs listacl "$dir"
    return
  fi
  mkdir -p "$dir"
  grep -q " $dir afs " /proc/mounts ||
    afs_retry 30 afs_admin mount -t afs "%$AFS_CELL:$(ident_volume "$t")." "$dir" || return 1
  afs_admin sh -c "setfattr -n afs.acl -v $(afs_acl_hex "system:administrators 127" "$(ident_pts "$t") 63") $dir &&
    getfattr --only-values -n afs.acl $dir | tr -d '\\000'"
}

# The identity lines of afsfile.conf (replacing earlier ones of these labels).
ident_config() {
  local t
  sed -i '/^identity\.tenant-/d; /^identity-default/d' "$IDENT_CONF"
  for t in $IDENT_TENANTS; do
    echo "identity.$(ident_label "$t") = keytab=$(ident_keytab "$t") cell=$AFS_CELL" \
      "domains=xt-t$t,xt-t$t-x,xt-t$t-e,xt-t$t-o,xt-t$t-x-o,xt-t$t-e-o"
  done >> "$IDENT_CONF"
  echo "identity-default = host" >> "$IDENT_CONF"
}

# Waits (up to $2 s) until identity $1's status file names a success after the ISO time $3
# (or any success when $3 is empty).
ident_wait_success() { # ident_wait_success LABEL SECONDS [AFTER]
  local f end
  f=$(ident_status "$1") end=$(($(now_s) + $2))
  while :; do
    s=$(json_field "$f" lastSuccess) p=$(json_field "$f" pid)
    # A file left by an earlier worker's identity process (its pid gone) does not count.
    [ -n "$s" ] && [ -n "$p" ] && kill -0 "$p" 2>/dev/null && { [ -z "$3" ] || [ "$s" \> "$3" ]; } && return 0
    [ "$(now_s)" -ge "$end" ] && return 1
    sleep 1
  done
}

# The pid of the device process serving guest NAME's xvda (its status file), and the parent of a pid.
dev_pid() { json_field "/run/afsfile/status/dev-$(guest_domid "$1")-$XVDA.json" pid; }
ppid_of() { sed -n 's/^PPid:[[:space:]]*//p' "/proc/$1/status"; }

# The kAFS tokens in session keyrings (/proc/keys: ID FLAGS USAGE TIMEOUT PERM UID GID TYPE
# DESCRIPTION, "_ses: N" for a session keyring): one "KEYRING TOKENS TIMEOUTS" line per session
# keyring holding any afs@CELL rxrpc key (ids in decimal, as keyctl takes them; TIMEOUTS as
# /proc/keys shows the keys' remaining lifetimes).
token_keyrings() {
  local k id n t
  for k in $(awk '$8 == "keyring" && $9 == "_ses:" {print $1}' /proc/keys); do
    n=0 t=
    for id in $(keyctl rlist "$((0x$k))" 2>/dev/null); do
      keyctl rdescribe "$id" 2>/dev/null | grep -q "^rxrpc;.*;afs@$AFS_CELL" || continue
      n=$((n + 1))
      t="$t$(awk -v id="$(printf '%08x' "$id")" '$1 == id {print $4}' /proc/keys),"
    done
    [ "$n" -gt 0 ] && echo "$((0x$k)) $n ${t%,}"
  done
  return 0
}

# A guest NAME (bound to identity LABEL, or `host`) whose disk names IMAGE must be refused, and
# xl must show the hotplug error naming domain, identity and image, never a principal; for an
# identity, the hotplug log must name its principal PRINC.
ident_refused() { # ident_refused NAME IMAGE LABEL [PRINC]
  local out=/run/xentest/$1.create err hfrom
  hfrom=$(($(cat /var/log/xen/xen-hotplug.log 2>/dev/null | wc -l) + 1))
  guest_cfg "$1" "vdev=xvda,access=rw,script=block-afsfile,target=$2" 63 > "/run/xentest/$1.cfg"
  xt_step "xl create $1 (identity $3) with $2"
  if timeout 60 xl create "/run/xentest/$1.cfg" > "$out" 2>&1; then
    show "xl create" "$out"; timeout 30 xl destroy "$1"; fail "$1 (identity $3) was given $2"
  fi
  err=$(grep -m1 'script: ' "$out" | sed 's/.*script: //')
  [ -n "$err" ] || { show "xl create $1" "$out"; fail "xl create $1 failed without a hotplug error: $(tail -n 1 "$out")"; }
  case $err in *"$2"*) ;; *) fail "the hotplug error does not name the image: $err" ;; esac
  if [ "$3" != host ]; then
    case $err in *"domain $1, identity $3"*) ;; *) fail "the hotplug error does not name domain and identity: $err" ;; esac
  fi
  case $err in *tenant/*|*tenant.*|*afsfile/dom0*|*"@$AFS_REALM"*) fail "the hotplug error names a principal: $err" ;; esac
  xt_step "$1 refused; xl shows: $err"
  tail -n +"$hfrom" /var/log/xen/xen-hotplug.log > "/run/xentest/$1.hotplug" 2>/dev/null
  if [ -n "$4" ]; then
    show "xen-hotplug.log" "/run/xentest/$1.hotplug"
    grep -q "principal $4@$AFS_REALM" "/run/xentest/$1.hotplug" || fail "the hotplug log does not name identity $3's principal $4"
    xt_step "the hotplug log names $3's principal $4@$AFS_REALM"
  fi
  wait_until 20 sh -c "! xl domid $1 >/dev/null 2>&1" || fail "xl left the refused domain $1 behind"
}
