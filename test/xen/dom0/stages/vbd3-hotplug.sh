#!/bin/sh
# afsfile-hotplug.sh on the tap route: backendtype=tap,script=block-afsfile, the
# device under backend/vbd3 (params aio:PATH), kernel blkback loaded beside it.
AFS_ROUTE=vbd3 exec sh /xentest/stages/afsfile-hotplug.sh
