// The request/response codec shared by both ABIs: they differ only in where id and the fields
// after it sit (x86_32 has no padding before the u64 id). The per-ABI files give the offsets.
import type { Abi, BlkifResponse } from './abi';
import {
  BlkifOp,
  MAX_INDIRECT_PAGES_PER_REQUEST,
  MAX_SEGMENTS_PER_REQUEST,
  SEGMENTS_PER_INDIRECT_PAGE,
} from './constants';
import type { BlkifRequest, Segment } from './request';

/** Byte offsets of one ABI (blkif.h). Fields before id are at the same place in both. */
export interface AbiLayout {
  name: string;
  requestSize: number;
  responseSize: number;
  rwId: number;
  rwSector: number;
  rwSegments: number;
  discardNrSectors: number;
  indirectId: number;
  indirectSector: number;
  indirectHandle: number;
  indirectGrefs: number;
}

// Offsets common to both ABIs.
const OP = 0;
const NR_SEGMENTS = 1; // rw: u8; discard: flag; indirect: indirect_op
const HANDLE = 2; // rw and discard
const INDIRECT_NR_SEGMENTS = 2; // u16
const RSP_ID = 0;
const RSP_OP = 8;
const RSP_STATUS = 10;
/** struct blkif_request_segment: gref u32 @0, first_sect u8 @4, last_sect u8 @5, pad (8 bytes). */
export const SEGMENT_SIZE = 8;

// One DataView per distinct buffer, reused: no allocation per request on the hot path.
let lastBytes: Uint8Array | undefined;
let lastView: DataView | undefined;
function view(bytes: Uint8Array): DataView {
  if (bytes !== lastBytes || lastView === undefined) {
    lastView = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    lastBytes = bytes;
  }
  return lastView;
}

/** Decodes one segment descriptor (ring slot or indirect page; same layout in both ABIs). */
export function readSegment(bytes: Uint8Array, offset: number): Segment {
  const v = view(bytes);
  return { gref: v.getUint32(offset, true), firstSect: v.getUint8(offset + 4), lastSect: v.getUint8(offset + 5) };
}

export function writeSegment(bytes: Uint8Array, offset: number, seg: Segment): void {
  const v = view(bytes);
  v.setUint32(offset, seg.gref >>> 0, true);
  v.setUint8(offset + 4, seg.firstSect & 0xff);
  v.setUint8(offset + 5, seg.lastSect & 0xff);
  v.setUint16(offset + 6, 0, true);
}

/** Decodes `count` descriptors from copied indirect pages (512 per 4 KiB page, back to back). */
export function readIndirectSegments(pages: Uint8Array, offset: number, count: number): Segment[] {
  const segs = new Array<Segment>(count);
  for (let i = 0; i < count; i++) segs[i] = readSegment(pages, offset + i * SEGMENT_SIZE);
  return segs;
}

export function makeAbi(l: AbiLayout): Abi {
  const stride = l.requestSize; // the request is the larger member of the union
  return {
    name: l.name,
    requestSize: l.requestSize,
    responseSize: l.responseSize,
    stride,

    readRequest(bytes: Uint8Array, at: number): BlkifRequest {
      const v = view(bytes);
      const operation = v.getUint8(at + OP);
      switch (operation) {
        case BlkifOp.READ:
        case BlkifOp.WRITE:
        case BlkifOp.WRITE_BARRIER:
        case BlkifOp.FLUSH_DISKCACHE: {
          const nrSegments = v.getUint8(at + NR_SEGMENTS);
          const n = Math.min(nrSegments, MAX_SEGMENTS_PER_REQUEST);
          const segments = new Array<Segment>(n);
          for (let i = 0; i < n; i++) segments[i] = readSegment(bytes, at + l.rwSegments + i * SEGMENT_SIZE);
          return {
            kind: 'rw',
            operation,
            innerOperation: operation,
            nrSegments,
            handle: v.getUint16(at + HANDLE, true),
            id: v.getBigUint64(at + l.rwId, true),
            sectorNumber: v.getBigUint64(at + l.rwSector, true),
            segments,
            indirectGrefs: [],
          };
        }
        case BlkifOp.DISCARD:
          return {
            kind: 'discard',
            operation,
            flag: v.getUint8(at + NR_SEGMENTS),
            handle: v.getUint16(at + HANDLE, true),
            id: v.getBigUint64(at + l.rwId, true),
            sectorNumber: v.getBigUint64(at + l.rwSector, true),
            nrSectors: v.getBigUint64(at + l.discardNrSectors, true),
          };
        case BlkifOp.INDIRECT: {
          const nrSegments = v.getUint16(at + INDIRECT_NR_SEGMENTS, true);
          const pages = Math.min(Math.ceil(nrSegments / SEGMENTS_PER_INDIRECT_PAGE), MAX_INDIRECT_PAGES_PER_REQUEST);
          const indirectGrefs = new Array<number>(pages);
          for (let i = 0; i < pages; i++) indirectGrefs[i] = v.getUint32(at + l.indirectGrefs + 4 * i, true);
          return {
            kind: 'rw',
            operation,
            innerOperation: v.getUint8(at + NR_SEGMENTS),
            nrSegments,
            handle: v.getUint16(at + l.indirectHandle, true),
            id: v.getBigUint64(at + l.indirectId, true),
            sectorNumber: v.getBigUint64(at + l.indirectSector, true),
            segments: [],
            indirectGrefs,
          };
        }
        default:
          // As Linux blkback: only id is taken (from the read/write layout) to answer EOPNOTSUPP.
          return { kind: 'unknown', operation, id: v.getBigUint64(at + l.rwId, true) };
      }
    },

    writeResponse(bytes: Uint8Array, at: number, id: bigint, operation: number, status: number): void {
      const v = view(bytes);
      v.setBigUint64(at + RSP_ID, BigInt.asUintN(64, id), true);
      v.setUint8(at + RSP_OP, operation & 0xff);
      v.setInt16(at + RSP_STATUS, status, true);
    },

    writeRequest(bytes: Uint8Array, at: number, req: BlkifRequest): void {
      const v = view(bytes);
      bytes.fill(0, at, at + l.requestSize);
      v.setUint8(at + OP, req.operation & 0xff);
      switch (req.kind) {
        case 'rw':
          if (req.operation === BlkifOp.INDIRECT) {
            v.setUint8(at + NR_SEGMENTS, req.innerOperation & 0xff);
            v.setUint16(at + INDIRECT_NR_SEGMENTS, req.nrSegments & 0xffff, true);
            v.setBigUint64(at + l.indirectId, BigInt.asUintN(64, req.id), true);
            v.setBigUint64(at + l.indirectSector, BigInt.asUintN(64, req.sectorNumber), true);
            v.setUint16(at + l.indirectHandle, req.handle & 0xffff, true);
            const n = Math.min(req.indirectGrefs.length, MAX_INDIRECT_PAGES_PER_REQUEST);
            for (let i = 0; i < n; i++) v.setUint32(at + l.indirectGrefs + 4 * i, req.indirectGrefs[i] >>> 0, true);
          } else {
            v.setUint8(at + NR_SEGMENTS, req.nrSegments & 0xff);
            v.setUint16(at + HANDLE, req.handle & 0xffff, true);
            v.setBigUint64(at + l.rwId, BigInt.asUintN(64, req.id), true);
            v.setBigUint64(at + l.rwSector, BigInt.asUintN(64, req.sectorNumber), true);
            const n = Math.min(req.segments.length, MAX_SEGMENTS_PER_REQUEST);
            for (let i = 0; i < n; i++) writeSegment(bytes, at + l.rwSegments + i * SEGMENT_SIZE, req.segments[i]);
          }
          break;
        case 'discard':
          v.setUint8(at + NR_SEGMENTS, req.flag & 0xff);
          v.setUint16(at + HANDLE, req.handle & 0xffff, true);
          v.setBigUint64(at + l.rwId, BigInt.asUintN(64, req.id), true);
          v.setBigUint64(at + l.rwSector, BigInt.asUintN(64, req.sectorNumber), true);
          v.setBigUint64(at + l.discardNrSectors, BigInt.asUintN(64, req.nrSectors), true);
          break;
        case 'unknown':
          v.setBigUint64(at + l.rwId, BigInt.asUintN(64, req.id), true);
          break;
      }
    },

    readResponse(bytes: Uint8Array, at: number): BlkifResponse {
      const v = view(bytes);
      return {
        id: v.getBigUint64(at + RSP_ID, true),
        operation: v.getUint8(at + RSP_OP),
        status: v.getInt16(at + RSP_STATUS, true),
      };
    },
  };
}
