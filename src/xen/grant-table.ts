// Grant tables: map the frontend's ring pages; copy request data with batched grant copies.
// Implemented on Linux over /dev/xen/gntdev (xen/linux) and by the simulator (sim/).
//
// Data moves by grant copy: each ring drain builds one GrantCopyBatch and hands it to copy()
// once (one IOCTL_GNTDEV_GRANT_COPY), as QEMU does (qemu hw/block/dataplane/xen-block.c) and
// tapdisk (blktap). With persistent grants negotiated (engine/persistent-grants.ts) the
// segments whose grant is kept mapped are copied with memcpy instead, as Linux blkback does.

/** XEN_PAGE_SIZE: grant pages are 4 KiB whatever the dom0 page size. The one definition. */
export const PAGE_SIZE = 4096;

/** GNTST_* status codes (xen/include/public/grant_table.h). */
export const GNTST = {
  okay: 0,
  general_error: -1,
  bad_domain: -2,
  bad_gntref: -3,
  bad_handle: -4,
  bad_virt_addr: -5,
  bad_dev_addr: -6,
  no_device_space: -7,
  permission_denied: -8,
  bad_page: -9,
  bad_copy_arg: -10,
  address_too_big: -11,
  eagain: -12,
  no_space: -13,
} as const;

export interface RingMapping {
  /** pageCount * 4096 bytes, shared with the frontend. */
  readonly buffer: ArrayBuffer;
  /** Unmaps (GET_OFFSET_FOR_VADDR, munmap, UNMAP_GRANT_REF on Linux). Idempotent. */
  unmap(): void;
}

/**
 * A reusable batch of grant-copy segments in struct-of-arrays form, so building a batch on the
 * hot path allocates nothing. Each segment copies `length` bytes between a guest page (gref,
 * offset within the page) and the local pool (poolOffset). A segment never crosses a guest page.
 */
export class GrantCopyBatch {
  count = 0;
  readonly toGuest: Uint8Array;
  readonly domid: Uint16Array;
  readonly gref: Uint32Array;
  readonly guestOffset: Uint16Array;
  readonly length: Uint16Array;
  readonly poolOffset: Float64Array;
  /** GNTST_* per segment, filled by GrantTable.copy. */
  readonly status: Int16Array;

  constructor(readonly capacity: number) {
    this.toGuest = new Uint8Array(capacity);
    this.domid = new Uint16Array(capacity);
    this.gref = new Uint32Array(capacity);
    this.guestOffset = new Uint16Array(capacity);
    this.length = new Uint16Array(capacity);
    this.poolOffset = new Float64Array(capacity);
    this.status = new Int16Array(capacity);
  }

  /** Adds a segment; returns its index. The caller keeps count <= capacity. */
  add(toGuest: boolean, domid: number, gref: number, guestOffset: number, length: number, poolOffset: number): number {
    const i = this.count++;
    if (i >= this.capacity) throw new RangeError('GrantCopyBatch full');
    this.toGuest[i] = toGuest ? 1 : 0;
    this.domid[i] = domid;
    this.gref[i] = gref;
    this.guestOffset[i] = guestOffset;
    this.length[i] = length;
    this.poolOffset[i] = poolOffset;
    this.status[i] = GNTST.general_error;
    return i;
  }

  reset(): void {
    this.count = 0;
  }
}

/** One foreign page mapped until unmap() (a persistent grant, blkif.h "feature-persistent"). */
export interface GrantPage {
  /** The page's 4096 bytes, shared with the frontend. */
  readonly bytes: Uint8Array;
  /** Idempotent. */
  unmap(): void;
}

export interface GrantTable {
  /** Maps the frontend's pages (a multi-page ring) as one contiguous, writable buffer. */
  mapRing(domid: number, grefs: readonly number[]): Promise<RingMapping>;
  /**
   * Local memory that grant copies can address (on Linux: page-aligned, its address known to
   * the addon). The engine allocates its data buffers from one pool. Zero, and mapped lazily:
   * a page costs memory only once touched.
   */
  allocPool(bytes: number): Uint8Array;
  /**
   * Gives the whole pages of pool[offset, offset + length) back to the host (nothing of them
   * may be in use); they read as zero afterwards. `busy`: the device is not idle (part of a
   * pool in use is given back), so the malloc arenas are left as they are.
   */
  releasePool(pool: Uint8Array, offset: number, length: number, busy?: boolean): void;
  /**
   * Performs every segment of the batch against `pool` (which came from allocPool) and fills
   * batch.status. A bad gref fails only its own segment. Throws only when the whole call failed
   * (then no status is meaningful).
   */
  copy(batch: GrantCopyBatch, pool: Uint8Array): void;
  /**
   * Maps one grant writable, synchronously, for as long as the frontend keeps reusing it
   * (persistent grants, as Linux blkback keeps them: drivers/block/xen-blkback/blkback.c).
   * Null when the grant cannot be mapped now (bad or read-only grant, a paged-out page): the
   * caller grant-copies that segment instead. Absent where the platform cannot map grants.
   */
  mapGrant?(domid: number, gref: number): GrantPage | null;
  close(): void;
}
