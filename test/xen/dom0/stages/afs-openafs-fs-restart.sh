#!/bin/sh
# The kAFS stage afs-fs-restart with the OpenAFS client (afs-openafs-client switched this boot to it).
exec /xentest/stages/afs-fs-restart.sh
