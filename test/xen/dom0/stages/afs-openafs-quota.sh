#!/bin/sh
# The kAFS stage afs-quota with the OpenAFS client (afs-openafs-client switched this boot to it),
# with the file server's partition full as well (see there).
AFS_QUOTA_FULL=1 exec /xentest/stages/afs-quota.sh
