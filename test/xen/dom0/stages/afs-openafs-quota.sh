#!/bin/sh
# The kAFS stage afs-quota with the OpenAFS client (afs-openafs-client switched this boot to it).
exec /xentest/stages/afs-quota.sh
