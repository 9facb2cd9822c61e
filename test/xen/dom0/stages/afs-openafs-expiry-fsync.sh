#!/bin/sh
# Case 2 with the OpenAFS client, the fsync gate's turn: afs-token-expiry with the worker's write
# margin at the fsync margin (10 s), the guest writing from 25 s before expiry (see there).
AFS_EXPIRY_WRITE_MARGIN=10 exec /xentest/stages/afs-token-expiry.sh
