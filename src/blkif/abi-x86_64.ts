// x86_64-abi (native on x86_64): struct blkif_request is 112 bytes, the response 16
// (xen.git xen/include/public/io/blkif.h; Linux drivers/block/xen-blkback/common.h
// blkif_x86_64_request).
import { makeAbi } from './codec';

export const X86_64 = makeAbi({
  name: 'x86_64-abi',
  requestSize: 112,
  responseSize: 16,
  rwId: 8,
  rwSector: 16,
  rwSegments: 24,
  discardNrSectors: 24,
  indirectId: 8,
  indirectSector: 16,
  indirectHandle: 24,
  indirectGrefs: 28,
});
