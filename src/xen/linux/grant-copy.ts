// Encoding a GrantCopyBatch into the array of struct gntdev_grant_copy_segment that ONE
// IOCTL_GNTDEV_GRANT_COPY consumes, and reading the per-segment status back (Linux
// include/uapi/xen/gntdev.h).
//
// Layout (24 bytes): 0 source, 8 dest — each either a u64 local virtual address or
// {u32 ref, u16 offset, u16 domid} — 16 u16 len, 18 u16 flags, 20 s16 status, 22 padding.
// Guest → pool (a write request): flags = GNTCOPY_source_gref, source = foreign, dest = virt.
// Pool → guest (a read request): flags = GNTCOPY_dest_gref, source = virt, dest = foreign.
//
// The kernel rejects the WHOLE ioctl with EINVAL when one segment crosses the guest page, so
// such segments are never sent: they get GNTST_bad_copy_arg here and the rest still run. A
// segment outside the pool gets the same status; the kernel would copy wherever it points.
import { GNTST, type GrantCopyBatch, PAGE_SIZE } from '../grant-table';
import { GNTCOPY_dest_gref, GNTCOPY_source_gref, OFFSETOF, SIZEOF } from './uapi';

const SEG = SIZEOF.gntdev_grant_copy_segment;
// Field positions in units of the typed arrays used on the hot path (native byte order, which
// is little-endian on every architecture Linux runs a Xen dom0 on: x86_64, arm64).
const SEG16 = SEG / 2;
const SRC = OFFSETOF['gntdev_grant_copy_segment.source'];
const DST = OFFSETOF['gntdev_grant_copy_segment.dest'];
const F_REF = OFFSETOF['gntdev_grant_copy_segment.source.foreign.ref'];
const F_OFF = OFFSETOF['gntdev_grant_copy_segment.source.foreign.offset'];
const F_DOM = OFFSETOF['gntdev_grant_copy_segment.source.foreign.domid'];
const LEN16 = OFFSETOF['gntdev_grant_copy_segment.len'] / 2;
const FLAGS16 = OFFSETOF['gntdev_grant_copy_segment.flags'] / 2;
const STATUS16 = OFFSETOF['gntdev_grant_copy_segment.status'] / 2;
const TWO32 = 0x1_0000_0000;
// Module-local copies: imported bindings can compile to getter calls in a CommonJS build.
const FLAG_TO_GUEST = GNTCOPY_dest_gref;
const FLAG_FROM_GUEST = GNTCOPY_source_gref;
const ST_GENERAL_ERROR = GNTST.general_error;
const ST_BAD_COPY_ARG = GNTST.bad_copy_arg;
const ST_EAGAIN = GNTST.eagain;
const PAGE = PAGE_SIZE;

/** Whether segment i may be sent: stays inside its guest page and inside the pool. */
export function segmentIsValid(batch: GrantCopyBatch, i: number, poolLength: number): boolean {
  const len = batch.length[i];
  const poolOffset = batch.poolOffset[i];
  return batch.guestOffset[i] + len <= PAGE &&
    Number.isInteger(poolOffset) && poolOffset >= 0 && poolOffset + len <= poolLength;
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
  private u32: Uint32Array;
  private u16: Uint16Array;
  private i16: Int16Array;
  /** slots[k] = the batch index of encoded segment k. */
  private slots: Int32Array;
  count = 0;

  constructor(private readonly alloc: (bytes: number) => PinnedBytes, initialCapacity = 64) {
    this.segs = alloc(initialCapacity * SEG);
    this.slots = new Int32Array(initialCapacity);
    [this.u32, this.u16, this.i16] = this.views();
  }

  private views(): [Uint32Array, Uint16Array, Int16Array] {
    const { buffer, byteOffset, byteLength } = this.segs.bytes;
    return [
      new Uint32Array(buffer, byteOffset, byteLength >>> 2),
      new Uint16Array(buffer, byteOffset, byteLength >>> 1),
      new Int16Array(buffer, byteOffset, byteLength >>> 1),
    ];
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
    this.slots = new Int32Array(cap);
    [this.u32, this.u16, this.i16] = this.views();
  }

  /** Writes segment i of the batch as struct number `slot`; poolAddress = the pool's byte 0. */
  private encode(slot: number, batch: GrantCopyBatch, i: number, poolAddress: number): void {
    const toGuest = batch.toGuest[i] !== 0;
    const foreign = slot * SEG + (toGuest ? DST : SRC);
    const local = (slot * SEG + (toGuest ? SRC : DST)) >>> 2;
    this.u32[(foreign + F_REF) >>> 2] = batch.gref[i];
    this.u16[(foreign + F_OFF) >>> 1] = batch.guestOffset[i];
    this.u16[(foreign + F_DOM) >>> 1] = batch.domid[i];
    const virt = poolAddress + batch.poolOffset[i];
    const hi = Math.floor(virt / TWO32);
    this.u32[local] = virt - hi * TWO32;
    this.u32[local + 1] = hi;
    const at16 = slot * SEG16;
    this.u16[at16 + LEN16] = batch.length[i];
    this.u16[at16 + FLAGS16] = toGuest ? FLAG_TO_GUEST : FLAG_FROM_GUEST;
    // The kernel sets okay before copying; anything it leaves untouched reads as an error.
    this.i16[at16 + STATUS16] = ST_GENERAL_ERROR;
    this.u16[at16 + STATUS16 + 1] = 0;
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
        batch.status[i] = ST_BAD_COPY_ARG;
        continue;
      }
      this.encode(n, batch, i, poolAddress);
      this.slots[n++] = i;
    }
    return (this.count = n);
  }

  /** Copies each encoded segment's status into batch.status; returns how many are GNTST_eagain. */
  readBack(batch: GrantCopyBatch): number {
    let again = 0;
    for (let k = 0; k < this.count; k++) {
      const s = this.i16[k * SEG16 + STATUS16];
      batch.status[this.slots[k]] = s;
      if (s === ST_EAGAIN) again++;
    }
    return again;
  }

  /** Re-encodes only the segments that came back GNTST_eagain, for one more ioctl. */
  encodeRetry(batch: GrantCopyBatch, poolAddress: number): number {
    let n = 0;
    for (let k = 0; k < this.count; k++) {
      const i = this.slots[k];
      if (batch.status[i] !== ST_EAGAIN) continue;
      this.encode(n, batch, i, poolAddress);
      this.slots[n++] = i;
    }
    return (this.count = n);
  }
}
