// Encoding a GrantCopyBatch into the array of struct gntdev_grant_copy_segment that ONE
// IOCTL_GNTDEV_GRANT_COPY consumes, and reading the per-segment status back (facts §4.2).
//
// Layout (24 bytes): 0 source, 8 dest — each either a u64 local virtual address or
// {u32 ref, u16 offset, u16 domid} — 16 u16 len, 18 u16 flags, 20 s16 status, 22 padding.
// Guest → pool (a write request): flags = GNTCOPY_source_gref, source = foreign, dest = virt.
// Pool → guest (a read request): flags = GNTCOPY_dest_gref, source = virt, dest = foreign.
//
// The kernel rejects the WHOLE ioctl with EINVAL when one segment crosses the guest page, so
// such segments are never sent: they get GNTST_bad_copy_arg here and the rest still run. A
// segment outside the pool gets the same status; the kernel would copy wherever it points.
import { GNTST, type GrantCopyBatch } from '../grant-table';
import { GNTCOPY_dest_gref, GNTCOPY_source_gref, OFFSETOF, SIZEOF, XEN_PAGE_SIZE, setU64 } from './uapi';

const SEG = SIZEOF.gntdev_grant_copy_segment;
const SRC = OFFSETOF['gntdev_grant_copy_segment.source'];
const DST = OFFSETOF['gntdev_grant_copy_segment.dest'];
const F_REF = OFFSETOF['gntdev_grant_copy_segment.source.foreign.ref'];
const F_OFF = OFFSETOF['gntdev_grant_copy_segment.source.foreign.offset'];
const F_DOM = OFFSETOF['gntdev_grant_copy_segment.source.foreign.domid'];
const LEN = OFFSETOF['gntdev_grant_copy_segment.len'];
const FLAGS = OFFSETOF['gntdev_grant_copy_segment.flags'];
const STATUS = OFFSETOF['gntdev_grant_copy_segment.status'];

/** Whether segment i may be sent: stays inside its guest page and inside the pool. */
export function segmentIsValid(batch: GrantCopyBatch, i: number, poolLength: number): boolean {
  const len = batch.length[i];
  const poolOffset = batch.poolOffset[i];
  return batch.guestOffset[i] + len <= XEN_PAGE_SIZE &&
    Number.isInteger(poolOffset) && poolOffset >= 0 && poolOffset + len <= poolLength;
}

/** Writes segment i of the batch as struct number `slot` of `out`; poolAddress = the pool's byte 0. */
export function encodeSegment(out: DataView, slot: number, batch: GrantCopyBatch, i: number, poolAddress: number): void {
  const at = slot * SEG;
  const toGuest = batch.toGuest[i] !== 0;
  const foreign = at + (toGuest ? DST : SRC);
  const local = at + (toGuest ? SRC : DST);
  out.setUint32(foreign + F_REF, batch.gref[i], true);
  out.setUint16(foreign + F_OFF, batch.guestOffset[i], true);
  out.setUint16(foreign + F_DOM, batch.domid[i], true);
  setU64(out, local, poolAddress + batch.poolOffset[i]);
  out.setUint16(at + LEN, batch.length[i], true);
  out.setUint16(at + FLAGS, toGuest ? GNTCOPY_dest_gref : GNTCOPY_source_gref, true);
  // The kernel sets okay before copying; anything it leaves untouched reads as an error.
  out.setInt16(at + STATUS, GNTST.general_error, true);
  out.setUint16(at + STATUS + 2, 0, true);
}

export function readStatus(out: DataView, slot: number): number {
  return out.getInt16(slot * SEG + STATUS, true);
}

/** Memory whose address the kernel can use (allocAligned on Linux), with that address. */
export interface PinnedBytes {
  readonly bytes: Uint8Array;
  readonly address: number;
}

/**
 * Reusable encoder: the segment array lives in pinned memory (its address goes into the ioctl
 * argument) and grows only when a larger batch comes; building a batch allocates nothing.
 */
export class GrantCopyEncoder {
  private segs: PinnedBytes;
  private view: DataView;
  /** slots[k] = the batch index of encoded segment k. */
  private slots: Int32Array;
  count = 0;

  constructor(private readonly alloc: (bytes: number) => PinnedBytes, initialCapacity = 64) {
    this.segs = alloc(initialCapacity * SEG);
    this.view = new DataView(this.segs.bytes.buffer, this.segs.bytes.byteOffset, this.segs.bytes.byteLength);
    this.slots = new Int32Array(initialCapacity);
  }

  get address(): number {
    return this.segs.address;
  }

  /** The encoded structs (for tests and diagnostics). */
  get bytes(): Uint8Array {
    return this.segs.bytes.subarray(0, this.count * SEG);
  }

  private ensure(capacity: number): void {
    if (capacity <= this.slots.length) return;
    let cap = this.slots.length;
    while (cap < capacity) cap *= 2;
    this.segs = this.alloc(cap * SEG);
    this.view = new DataView(this.segs.bytes.buffer, this.segs.bytes.byteOffset, this.segs.bytes.byteLength);
    this.slots = new Int32Array(cap);
  }

  /**
   * Encodes every valid segment of the batch; invalid ones get GNTST_bad_copy_arg at once.
   * Returns the number encoded.
   */
  encodeAll(batch: GrantCopyBatch, poolAddress: number, poolLength: number): number {
    this.ensure(batch.count);
    let n = 0;
    for (let i = 0; i < batch.count; i++) {
      if (!segmentIsValid(batch, i, poolLength)) {
        batch.status[i] = GNTST.bad_copy_arg;
        continue;
      }
      encodeSegment(this.view, n, batch, i, poolAddress);
      this.slots[n++] = i;
    }
    return (this.count = n);
  }

  /** Copies each encoded segment's status into batch.status; returns how many are GNTST_eagain. */
  readBack(batch: GrantCopyBatch): number {
    let again = 0;
    for (let k = 0; k < this.count; k++) {
      const s = readStatus(this.view, k);
      batch.status[this.slots[k]] = s;
      if (s === GNTST.eagain) again++;
    }
    return again;
  }

  /** Re-encodes only the segments that came back GNTST_eagain, for one more ioctl. */
  encodeRetry(batch: GrantCopyBatch, poolAddress: number): number {
    let n = 0;
    for (let k = 0; k < this.count; k++) {
      const i = this.slots[k];
      if (batch.status[i] !== GNTST.eagain) continue;
      encodeSegment(this.view, n, batch, i, poolAddress);
      this.slots[n++] = i;
    }
    return (this.count = n);
  }
}
