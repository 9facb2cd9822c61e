#!/bin/sh
# baseline-blkback.sh in the vbd3 group: the blkback reference of the same
# boot for vbd3-rw's numbers (the performance anchor on Xen 4.20).
exec sh /xentest/stages/baseline-blkback.sh
