#!/bin/sh
# The kAFS stage afs-token-timeout with the OpenAFS client (afs-openafs-client switched this boot to it).
exec /xentest/stages/afs-token-timeout.sh
