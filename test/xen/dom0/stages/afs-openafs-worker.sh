#!/bin/sh
# The kAFS stage afs-worker with the OpenAFS client (afs-openafs-client switched this boot to it).
exec /xentest/stages/afs-worker.sh
