#!/bin/sh
# The kAFS stage afs-rw with the OpenAFS client (afs-openafs-client switched this boot to it).
exec /xentest/stages/afs-rw.sh
