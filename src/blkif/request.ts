// A request as the backend sees it after copying it out of the ring: plain numbers, no views
// into shared memory. Produced by the ABI codecs; checked by validate.ts; executed by engine/.

/** One 4 KiB guest page (or part of it) of a read or write. */
export interface Segment {
  gref: number;
  /** First and last 512-byte sector within the page, inclusive (0..7 when valid). */
  firstSect: number;
  lastSect: number;
}

/** READ, WRITE, WRITE_BARRIER, FLUSH_DISKCACHE, or an INDIRECT read/write. */
export interface RwRequest {
  kind: 'rw';
  /** The operation the guest wrote in the slot (INDIRECT stays INDIRECT here). */
  operation: number;
  /** For INDIRECT: the inner operation (READ or WRITE); otherwise equal to operation. */
  innerOperation: number;
  /** Number of segments the guest claimed (u8 direct, u16 indirect): untrusted until validated. */
  nrSegments: number;
  handle: number;
  /** Echoed back verbatim; kept as a bigint because guests use all 64 bits. */
  id: bigint;
  sectorNumber: bigint;
  /** Direct requests: the segments copied from the slot (only the first nrSegments, at most 11). */
  segments: Segment[];
  /** INDIRECT: grant references of the pages that hold the segment descriptors. */
  indirectGrefs: number[];
}

export interface DiscardRequest {
  kind: 'discard';
  operation: number;
  flag: number;
  handle: number;
  id: bigint;
  sectorNumber: bigint;
  nrSectors: bigint;
}

/** Anything else: only id and operation are trusted, to answer with EOPNOTSUPP. */
export interface UnknownRequest {
  kind: 'unknown';
  operation: number;
  id: bigint;
}

export type BlkifRequest = RwRequest | DiscardRequest | UnknownRequest;
