#!/bin/sh
# The kAFS stage afs-ident-expiry with the OpenAFS client (afs-openafs-client switched this boot to it).
exec /xentest/stages/afs-ident-expiry.sh
