#!/bin/bash
# The shared cache of the Xen test (source this file): everything slow to make
# (downloaded packages, kernels, hypervisors, a Debian 13 root, and for other
# stages e.g. a prebuilt AFS cell or a built openafs.ko) lives OUTSIDE the clone,
# under $XEN_TEST_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/afsfile-xen-test),
# so every clone and worktree on the machine shares it.
#
# Key scheme: an entry is a directory $XEN_TEST_CACHE/KIND/KEY, where KEY is the
# first 16 hex digits of the sha256 of its RECIPE: a text naming everything it
# is made from (package names and versions, the sha256 of the scripts and
# sources that build it, options). Change any input and the key changes, so the
# entry is made again next to the old one; nothing is ever rebuilt in place.
# The entry holds `recipe.txt` (its recipe) and is complete only once it has
# the stamp `.done`; it is built in KEY.tmp.PID and renamed, under a lock
# (KIND/KEY.lock), so two clones that need the same entry build it once.
#
#   cache_root                        print $XEN_TEST_CACHE (made if missing)
#   cache_key RECIPE                  print the key of a recipe text
#   cache_entry KIND RECIPE BUILDER [ARGS...]
#                                     print the entry's directory; when it is not
#                                     complete, run `BUILDER DIR ARGS...` (DIR: the
#                                     temporary directory to fill; stdout goes to
#                                     stderr) first, then stamp and rename it
#   cache_prune KIND KEEP             delete all but the KEEP newest entries of KIND

cache_root() {
  local root=${XEN_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/afsfile-xen-test}
  case $root in *,*) echo "cache: XEN_TEST_CACHE must not contain a comma (QEMU's -initrd list): $root" >&2; return 1 ;; esac
  mkdir -p "$root"
  echo "$root"
}

cache_key() { printf '%s\n' "$1" | sha256sum | cut -c1-16; }

cache_entry() {
  local kind=$1 recipe=$2 builder=$3; shift 3
  local root dir key
  root=$(cache_root) || return 1
  key=$(cache_key "$recipe")
  dir=$root/$kind/$key
  mkdir -p "$root/$kind"
  if [ ! -e "$dir/.done" ]; then
    (
      exec 9>"$dir.lock"
      flock 9
      if [ ! -e "$dir/.done" ]; then
        tmp=$dir.tmp.$$
        rm -rf "$tmp" && mkdir -p "$tmp"
        printf '%s\n' "$recipe" > "$tmp/recipe.txt"
        echo "cache: building $kind/$key" >&2
        "$builder" "$tmp" "$@" >&2 || { echo "cache: building $kind/$key failed" >&2; rm -rf "$tmp"; exit 1; }
        date -u +%FT%TZ > "$tmp/.done"
        rm -rf "$dir" && mv "$tmp" "$dir"
      fi
    ) || return 1
  fi
  touch "$dir/.done" 2>/dev/null || true # its mtime says when it was last used (cache_prune)
  echo "$dir"
}

cache_prune() {
  local kind=$1 keep=$2 root
  root=$(cache_root) || return 1
  [ -d "$root/$kind" ] || return 0
  ls -1t "$root/$kind"/*/.done 2>/dev/null | tail -n +$((keep + 1)) | while read -r stamp; do
    local d=${stamp%/.done}
    ( exec 9>"$d.lock"; flock -n 9 && rm -rf "$d" && echo "cache: pruned $d" >&2 )
  done
}
