#!/bin/sh
# The kAFS stage afs-ident-setup with the OpenAFS client (afs-openafs-client switched this boot to it).
exec /xentest/stages/afs-ident-setup.sh
