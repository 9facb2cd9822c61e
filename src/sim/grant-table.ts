// The backend's grant table in the simulator: ring pages mapped as a second mapping of the
// guest's memory file (same bytes, no copy), data moved by grant copy with the per-segment
// GNTST status Xen's GNTTABOP_copy reports.
import { GNTST, type GrantCopyBatch, type GrantTable, PAGE_SIZE, type RingMapping } from '../xen/grant-table';
import { native } from '../native/addon';
import type { GuestMemoryView } from './guest-memory';

/** Read once: imported constants are accessors in the per-file (test) build. */
const GNTST_OKAY = GNTST.okay;

export class SimGrantTable implements GrantTable {
  /** Segments copied and batches (copy calls) made, for tests and stats. */
  segmentsCopied = 0;
  batches = 0;

  constructor(
    /** Attaches to a guest (in-process or across processes). */
    private readonly attach: (domid: number) => Promise<GuestMemoryView>,
    /** A guest already attached, for the synchronous copy path. */
    private readonly attached: (domid: number) => GuestMemoryView | undefined,
    private readonly selfDomid = 0,
  ) {}

  async mapRing(domid: number, grefs: readonly number[]): Promise<RingMapping> {
    if (grefs.length === 0 || grefs.length > 16) throw Object.assign(new Error(`cannot map ${grefs.length} ring pages`), { code: 'EINVAL' });
    const mem = await this.attach(domid);
    const pages = grefs.map((g) => {
      const e = mem.lookupGrant(g, this.selfDomid);
      if (!e) throw Object.assign(new Error(`domain ${domid} grant ${g} is not valid for domain ${this.selfDomid} (GNTST_bad_gntref)`), { code: 'EINVAL', gntst: GNTST.bad_gntref });
      if (e.readonly) throw Object.assign(new Error(`domain ${domid} grant ${g} is read-only; a ring must be granted writable (GNTST_permission_denied)`), { code: 'EPERM', gntst: GNTST.permission_denied });
      return e.page;
    });
    for (let i = 1; i < pages.length; i++) {
      if (pages[i] !== pages[0]! + i)
        throw Object.assign(new Error(`domain ${domid}: the simulator maps only rings on consecutive guest pages (got pages ${pages.join(',')})`), { code: 'EINVAL' });
    }
    let buffer: ArrayBuffer | undefined = mem.mapPages(pages[0]!, pages.length);
    return {
      get buffer(): ArrayBuffer {
        if (!buffer) throw new Error('ring unmapped');
        return buffer;
      },
      // munmap happens when the ArrayBuffer is collected (the addon's finalizer); dropping
      // our reference is all unmapping can do from JS.
      unmap: () => {
        buffer = undefined;
      },
    };
  }

  /** Page-aligned, as on Linux (allocAligned): O_DIRECT reads and writes go straight from it. */
  allocPool(bytes: number): Uint8Array {
    return new Uint8Array(native().allocAligned(bytes, PAGE_SIZE));
  }

  copy(batch: GrantCopyBatch, pool: Uint8Array): void {
    this.batches++;
    // Per segment, as GNTTABOP_copy: check the grant, then move the bytes. Buffer views made
    // once per batch, so a segment costs a grant lookup and a memcpy, no allocation.
    const target = Buffer.from(pool.buffer, pool.byteOffset, pool.byteLength);
    let mem: GuestMemoryView | undefined;
    let memDomid = -1;
    let guest: Buffer | undefined;
    for (let i = 0; i < batch.count; i++) {
      const domid = batch.domid[i]!;
      if (domid !== memDomid) {
        memDomid = domid;
        mem = this.attached(domid);
        guest = mem ? Buffer.from(mem.bytes.buffer, mem.bytes.byteOffset, mem.bytes.byteLength) : undefined;
      }
      const st = mem ? this.copyOne(batch, i, mem, guest!, target) : GNTST.bad_domain;
      batch.status[i] = st;
      if (st === GNTST_OKAY) this.segmentsCopied++;
    }
  }

  private copyOne(batch: GrantCopyBatch, i: number, mem: GuestMemoryView, guest: Buffer, pool: Buffer): number {
    const off = batch.guestOffset[i]!;
    const len = batch.length[i]!;
    const at = batch.poolOffset[i]!;
    const toGuest = batch.toGuest[i] === 1;
    const page = mem.grantedPage(batch.gref[i]!, this.selfDomid, toGuest);
    if (page === -3) return GNTST.bad_gntref;
    if (off + len > PAGE_SIZE) return GNTST.bad_copy_arg;
    if (at < 0 || at + len > pool.length) return GNTST.general_error;
    if (page < 0) return GNTST.permission_denied;
    const g = mem.pageByteOffset(page) + off;
    if (toGuest) pool.copy(guest, g, at, at + len);
    else guest.copy(pool, at, g, g + len);
    return GNTST_OKAY;
  }

  close(): void {
    /* nothing held beyond the mappings, which go with their buffers */
  }
}
