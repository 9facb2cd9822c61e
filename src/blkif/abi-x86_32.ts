// x86_32-abi: the same fields packed without the 4-byte hole after `handle` (id is only
// 4-aligned on i386): 108-byte requests, 12-byte packed responses (xen.git
// xen/include/public/io/blkif.h built for i386; Linux drivers/block/xen-blkback/common.h
// blkif_x86_32_request).
import { makeAbi } from './codec';

export const X86_32 = makeAbi({
  name: 'x86_32-abi',
  requestSize: 108,
  responseSize: 12,
  rwId: 4,
  rwSector: 12,
  rwSegments: 20,
  discardNrSectors: 20,
  indirectId: 4,
  indirectSector: 12,
  indirectHandle: 20,
  indirectGrefs: 24,
});
