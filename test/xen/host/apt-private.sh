#!/bin/bash
# A private apt configuration for another Debian release (source this file):
# its own source list, lists, package cache and an empty dpkg status under
# $APT_ROOT, so `apt-get download` and `apt-cache` can see Debian 13 (trixie)
# from a Debian 12 host without changing anything of the host's apt setup.
#
#   apt_private_init ROOT SUITE   write ROOT/sources.list etc. (idempotent)
#   apt_private ROOT apt-get|apt-cache ARGS...   run apt with that configuration
#   apt_private_update ROOT       apt-get update, at most once a day
#   deb_download ROOT DIR PKG=VER the .deb of that version in DIR (apt-get download'ed once)

apt_private_init() {
  local root=$1 suite=$2 mirror=${XEN_TEST_MIRROR:-http://deb.debian.org/debian}
  local sec=${XEN_TEST_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
  local key=/usr/share/keyrings/debian-archive-keyring.gpg
  mkdir -p "$root"/{parts,prefs,conf,state/lists/partial,cache/archives/partial}
  local want
  want=$(printf 'deb [signed-by=%s] %s %s main\ndeb [signed-by=%s] %s %s-updates main\ndeb [signed-by=%s] %s %s-security main\n' \
    "$key" "$mirror" "$suite" "$key" "$mirror" "$suite" "$key" "$sec" "$suite")
  if [ "$(cat "$root/sources.list" 2>/dev/null)" != "$want" ]; then
    printf '%s\n' "$want" > "$root/sources.list"
    rm -f "$root/state/updated"
  fi
  : > "$root/status.empty"
}

apt_private() {
  local root=$1 cmd=$2; shift 2
  "$cmd" -q -o Dir::Etc::sourcelist="$root/sources.list" -o Dir::Etc::sourceparts="$root/parts" \
    -o Dir::Etc::preferences="$root/prefs/none" -o Dir::Etc::preferencesparts="$root/prefs" \
    -o Dir::Etc::parts="$root/conf" -o Dir::State="$root/state" -o Dir::State::status="$root/status.empty" \
    -o Dir::Cache="$root/cache" -o APT::Architecture=amd64 -o APT::Architectures::=amd64 \
    -o APT::Sandbox::User=root -o Debug::NoLocking=1 "$@"
}

apt_private_update() {
  local root=$1
  if [ -z "$(find "$root/state/updated" -mmin -1440 2>/dev/null)" ]; then
    apt_private "$root" apt-get update >&2 && touch "$root/state/updated"
  fi
}

# Prints the path of PKG's .deb of version VER in DIR, downloading it there first if no .deb of
# that version is there yet (the file name alone does not tell: epochs are not in it).
deb_download() { # deb_download ROOT DIR PKG=VER
  local root=$1 dir=$2 p=${3%%=*} v=${3#*=} f
  f=$(ls "$dir/${p}_"*.deb 2>/dev/null | while read -r d; do
        [ "$(dpkg-deb -f "$d" Version)" = "$v" ] && echo "$d"; done | head -n 1)
  if [ -z "$f" ]; then
    (cd "$dir" && apt_private "$root" apt-get download "$p=$v" >&2)
    f=$(ls -t "$dir/${p}_"*.deb | head -n 1)
  fi
  echo "$f"
}
