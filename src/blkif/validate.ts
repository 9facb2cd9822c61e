// Checks a copied-out request against the device and turns it into a plan the engine executes.
// Nothing in a request is trusted: segment counts, sector ranges, first/last_sect, indirect
// counts. A bad request becomes a 'fail' plan with the status to answer and a reason to log.
import {
  BlkifOp,
  BlkifStatus,
  MAX_INDIRECT_PAGES_PER_REQUEST,
  MAX_SEGMENTS_PER_REQUEST,
  SECTOR_SIZE,
  SECTORS_PER_PAGE,
  SEGMENTS_PER_INDIRECT_PAGE,
} from './constants';
import type { BlkifRequest, RwRequest, Segment } from './request';

/** What the device advertised and what the image allows. */
export interface DeviceLimits {
  /** Image size in 512-byte sectors. */
  readonly sectors: bigint;
  readonly readOnly: boolean;
  /** feature-max-indirect-segments (0: INDIRECT not advertised). */
  readonly maxIndirectSegments: number;
  /** feature-discard advertised. */
  readonly discard: boolean;
  /** feature-flush-cache advertised. */
  readonly flush: boolean;
  /** feature-barrier advertised. */
  readonly barrier: boolean;
}

/** One guest page (part) of a read or write, placed in the image. */
export interface PlannedSegment {
  gref: number;
  /** Byte offset within the guest page. */
  offsetInPage: number;
  length: number;
  /** Byte offset in the image: segments of a request are contiguous in the image. */
  fileOffset: number;
}

export type Plan =
  | {
      kind: 'read' | 'write';
      /** Image byte offset of the first segment; the request covers [fileOffset, fileOffset + bytes). */
      fileOffset: number;
      bytes: number;
      segments: PlannedSegment[];
      /** FLUSH_DISKCACHE with data: fsync before the write (QEMU's presync). */
      flushFirst: boolean;
      /** WRITE_BARRIER: all earlier writes complete first; later ones wait for it. */
      barrier: boolean;
    }
  /** FLUSH_DISKCACHE or WRITE_BARRIER without data. */
  | { kind: 'flush'; barrier: boolean }
  | { kind: 'discard'; fileOffset: number; bytes: number }
  /** INDIRECT: copy `pages` descriptor pages, then call planIndirect with the decoded segments. */
  | { kind: 'indirect'; grefs: number[]; nrSegments: number }
  | { kind: 'fail'; status: number; reason: string };

function fail(status: number, reason: string): Plan {
  return { kind: 'fail', status, reason };
}

/** First-stage check of any request. */
export function planRequest(req: BlkifRequest, lim: DeviceLimits): Plan {
  switch (req.kind) {
    case 'unknown':
      return fail(BlkifStatus.EOPNOTSUPP, `unknown operation ${req.operation}`);
    case 'discard': {
      if (!lim.discard) return fail(BlkifStatus.EOPNOTSUPP, 'discard not advertised');
      if (lim.readOnly) return fail(BlkifStatus.ERROR, 'discard on a read-only device');
      const end = req.sectorNumber + req.nrSectors;
      if (end > lim.sectors)
        return fail(
          BlkifStatus.ERROR,
          `discard of ${req.nrSectors} sectors at ${req.sectorNumber} past the end (${lim.sectors} sectors)`,
        );
      // end <= sectors < 2^53 / 512 for any real image, so Number() is exact here.
      return {
        kind: 'discard',
        fileOffset: Number(req.sectorNumber) * SECTOR_SIZE,
        bytes: Number(req.nrSectors) * SECTOR_SIZE,
      };
    }
    case 'rw':
      return planRwHeader(req, lim);
  }
}

function planRwHeader(req: RwRequest, lim: DeviceLimits): Plan {
  switch (req.operation) {
    case BlkifOp.READ:
      return planSegments(req, req.segments, lim, 'read', false, false);
    case BlkifOp.WRITE:
      if (lim.readOnly) return fail(BlkifStatus.ERROR, 'write to a read-only device');
      return planSegments(req, req.segments, lim, 'write', false, false);
    case BlkifOp.WRITE_BARRIER:
      if (!lim.barrier) return fail(BlkifStatus.EOPNOTSUPP, 'barrier not advertised');
      if (lim.readOnly) return fail(BlkifStatus.ERROR, 'barrier on a read-only device');
      if (req.nrSegments === 0) return { kind: 'flush', barrier: true };
      return planSegments(req, req.segments, lim, 'write', false, true);
    case BlkifOp.FLUSH_DISKCACHE:
      if (!lim.flush) return fail(BlkifStatus.EOPNOTSUPP, 'flush not advertised');
      if (req.nrSegments === 0) return { kind: 'flush', barrier: false };
      if (lim.readOnly) return fail(BlkifStatus.ERROR, 'flush with data on a read-only device');
      return planSegments(req, req.segments, lim, 'write', true, false);
    case BlkifOp.INDIRECT: {
      if (lim.maxIndirectSegments <= 0) return fail(BlkifStatus.EOPNOTSUPP, 'indirect descriptors not advertised');
      const inner = req.innerOperation;
      if (inner !== BlkifOp.READ && inner !== BlkifOp.WRITE)
        return fail(BlkifStatus.ERROR, `indirect request with inner operation ${inner}`);
      if (inner === BlkifOp.WRITE && lim.readOnly) return fail(BlkifStatus.ERROR, 'write to a read-only device');
      const max = Math.min(lim.maxIndirectSegments, MAX_INDIRECT_PAGES_PER_REQUEST * SEGMENTS_PER_INDIRECT_PAGE);
      if (req.nrSegments === 0 || req.nrSegments > max)
        return fail(BlkifStatus.ERROR, `indirect request with ${req.nrSegments} segments (1..${max} allowed)`);
      const pages = Math.ceil(req.nrSegments / SEGMENTS_PER_INDIRECT_PAGE);
      if (req.indirectGrefs.length < pages)
        return fail(BlkifStatus.ERROR, 'indirect request with too few descriptor pages');
      return { kind: 'indirect', grefs: req.indirectGrefs.slice(0, pages), nrSegments: req.nrSegments };
    }
    default:
      return fail(BlkifStatus.EOPNOTSUPP, `unknown operation ${req.operation}`);
  }
}

/** Second stage of INDIRECT: the segments decoded from the copied descriptor pages. */
export function planIndirect(req: RwRequest, segments: readonly Segment[], lim: DeviceLimits): Plan {
  return planSegments(req, segments, lim, req.innerOperation === BlkifOp.WRITE ? 'write' : 'read', false, false);
}

function planSegments(
  req: RwRequest,
  segs: readonly Segment[],
  lim: DeviceLimits,
  kind: 'read' | 'write',
  flushFirst: boolean,
  barrier: boolean,
): Plan {
  const indirect = req.operation === BlkifOp.INDIRECT;
  const n = req.nrSegments;
  if (n === 0) return fail(BlkifStatus.ERROR, 'request with 0 segments');
  if (!indirect && n > MAX_SEGMENTS_PER_REQUEST)
    return fail(BlkifStatus.ERROR, `request with ${n} segments (max ${MAX_SEGMENTS_PER_REQUEST})`);
  if (segs.length < n) return fail(BlkifStatus.ERROR, `request claims ${n} segments, ${segs.length} present`);
  let sectors = 0;
  for (let i = 0; i < n; i++) {
    const s = segs[i];
    if (s.firstSect > s.lastSect || s.lastSect >= SECTORS_PER_PAGE)
      return fail(BlkifStatus.ERROR, `segment ${i}: first_sect ${s.firstSect}, last_sect ${s.lastSect} (need first <= last <= ${SECTORS_PER_PAGE - 1})`);
    sectors += s.lastSect - s.firstSect + 1;
  }
  if (req.sectorNumber + BigInt(sectors) > lim.sectors)
    return fail(
      BlkifStatus.ERROR,
      `${kind} of ${sectors} sectors at ${req.sectorNumber} past the end (${lim.sectors} sectors)`,
    );
  const base = Number(req.sectorNumber) * SECTOR_SIZE;
  const planned = new Array<PlannedSegment>(n);
  let off = base;
  for (let i = 0; i < n; i++) {
    const s = segs[i];
    const length = (s.lastSect - s.firstSect + 1) * SECTOR_SIZE;
    planned[i] = { gref: s.gref, offsetInPage: s.firstSect * SECTOR_SIZE, length, fileOffset: off };
    off += length;
  }
  return { kind, fileOffset: base, bytes: off - base, segments: planned, flushFirst, barrier };
}
