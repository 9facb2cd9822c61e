// blkif protocol constants. Source: xen.git xen/include/public/io/blkif.h and io/protocols.h
// (test/blkif/abi-c.test.ts compares them with the header). Nothing else spells these numbers.
import { PAGE_SIZE } from '../xen/grant-table';

/** Operation codes (blkif.h BLKIF_OP_*). */
export const BlkifOp = {
  READ: 0,
  WRITE: 1,
  WRITE_BARRIER: 2,
  FLUSH_DISKCACHE: 3,
  /** Used by SLES for device-specific packets; always rejected. */
  RESERVED_1: 4,
  DISCARD: 5,
  INDIRECT: 6,
} as const;
export type BlkifOpCode = (typeof BlkifOp)[keyof typeof BlkifOp];

/** Response status (blkif.h BLKIF_RSP_*). */
export const BlkifStatus = {
  OKAY: 0,
  /** Any failure, "like -EIO". */
  ERROR: -1,
  /** The operation is not supported. */
  EOPNOTSUPP: -2,
} as const;
export type BlkifStatusCode = (typeof BlkifStatus)[keyof typeof BlkifStatus];

/** Segments in a direct request (BLKIF_MAX_SEGMENTS_PER_REQUEST). */
export const MAX_SEGMENTS_PER_REQUEST = 11;
/** Indirect descriptor pages per request (BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST). */
export const MAX_INDIRECT_PAGES_PER_REQUEST = 8;
/** Segment descriptors in one 4 KiB indirect page: 4096 / sizeof(blkif_request_segment). */
export const SEGMENTS_PER_INDIRECT_PAGE = 512;
/** What Linux blkback advertises (MAX_INDIRECT_SEGMENTS); 256 × 4 KiB = 1 MiB per request. */
export const DEFAULT_MAX_INDIRECT_SEGMENTS = 256;
/** XENBUS_MAX_RING_GRANT_ORDER: rings of up to 16 pages. */
export const MAX_RING_PAGE_ORDER = 4;

/** Sector unit of sector_number, first_sect, last_sect, nr_sectors and `sectors` (always). */
export const SECTOR_SIZE = 512;
/** The grant page the segments address (defined with the grant table). */
export { PAGE_SIZE };
export const SECTORS_PER_PAGE = PAGE_SIZE / SECTOR_SIZE;

/** Discard flag (blkif_request_discard.flag). */
export const BLKIF_DISCARD_SECURE = 1;

/** `info` bits (blkif.h VDISK_*). */
export const VDISK_CDROM = 0x1;
export const VDISK_REMOVABLE = 0x2;
export const VDISK_READONLY = 0x4;

/** Shared ring header size: req_prod, req_event, rsp_prod, rsp_event, pvt, pad (io/ring.h). */
export const RING_HEADER_SIZE = 64;

/** `protocol` key values (io/protocols.h). */
export const PROTOCOL_X86_64 = 'x86_64-abi';
export const PROTOCOL_X86_32 = 'x86_32-abi';
export const PROTOCOL_ARM = 'arm-abi';
