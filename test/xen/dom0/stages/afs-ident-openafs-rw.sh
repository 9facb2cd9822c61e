#!/bin/sh
# The kAFS stage afs-ident-rw with the OpenAFS client (afs-openafs-client switched this boot to it).
exec /xentest/stages/afs-ident-rw.sh
