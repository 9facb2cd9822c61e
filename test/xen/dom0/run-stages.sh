#!/bin/sh
# Run the stages listed in /xentest/stages.txt, in order, each as
# /xentest/stages/NAME.sh under a timeout, and print the markers the host
# driver (test/xen/run.mjs) reads:
#   XENTEST STAGE <name> BEGIN|END
#   XENTEST PASS <name> | XENTEST FAIL <name> <reason>
#   XENTEST SKIP <name> <reason> | XENTEST TODO <name> <description>
# Kernel command line: xentest.only=a,,b (comma list; doubled commas on the
# QEMU command line) runs only those stages (others are reported SKIP): the
# host driver chooses them (groups, Xen version, requirements). A stage whose
# XEN column does not name this dom0's Xen ($XEN_VERSION) is reported SKIP.
. /xentest/lib.sh

# Dev mode (dev-loop.sh) sets XENTEST_ONLY per request and keeps the passed
# stages across requests in XENTEST_PASSED_FILE.
only=${XENTEST_ONLY-$(cmdline_arg xentest.only)}
passed=" $(cat "${XENTEST_PASSED_FILE:-/dev/null}" 2>/dev/null) "
failures=0

while read -r name group xen kind requires timeout desc; do
  case $name in ''|'#'*|group) continue ;; esac
  # Not selected: the host driver reports those itself (group, Xen version).
  if [ -n "$only" ] && ! echo ",$only," | grep -q ",$name,"; then
    continue
  fi
  if [ "$xen" != all ] && ! echo ",$xen," | grep -q ",$XEN_VERSION,"; then
    echo "XENTEST SKIP $name not on Xen $XEN_VERSION (runs on $xen)"
    continue
  fi
  if [ "$kind" = perf ] && ! echo ",$only," | grep -q ",$name,"; then
    echo "XENTEST SKIP $name a performance stage: runs only when named (npm run test:xen:perf)"
    continue
  fi
  if [ "$kind" = todo ]; then
    echo "XENTEST TODO $name $desc"
    continue
  fi
  if { [ "$kind" = afsfile ] || [ "$kind" = perf ]; } && [ ! -x "$AFSFILE" ]; then
    echo "XENTEST SKIP $name no afsfile in dom0 ($AFSFILE)"
    continue
  fi
  # REQUIRES A|B: alternatives (one per route or Xen version); one of them must have passed.
  if [ "$requires" != - ] && ! echo "$passed" | grep -q -E " ($requires) "; then
    echo "XENTEST SKIP $name requires $requires, which did not pass"
    continue
  fi

  reason=/run/xentest/reason.$name
  rm -f "$reason"
  echo "XENTEST STAGE $name BEGIN $desc"
  XT_STAGE=$name XT_REASON=$reason timeout -s TERM "$timeout" sh "/xentest/stages/$name.sh" </dev/null
  rc=$?
  if [ $rc -eq 0 ]; then
    echo "XENTEST PASS $name"
    passed="$passed$name "
    [ -n "$XENTEST_PASSED_FILE" ] && echo "$passed" > "$XENTEST_PASSED_FILE"
  else
    why=$(cat "$reason" 2>/dev/null)
    if [ -z "$why" ]; then
      case $rc in
        124|143) why="timed out after ${timeout}s" ;;
        *) why="exit status $rc" ;;
      esac
    fi
    echo "XENTEST FAIL $name $why"
    failures=$((failures + 1))
    cleanup_domains
    # A failed stage leaves its images: free the RAM disk for the next stages.
    rm -f "$IMAGES"/*.img
  fi
  echo "XENTEST STAGE $name END"
done < /xentest/stages.txt

[ $failures -eq 0 ]
