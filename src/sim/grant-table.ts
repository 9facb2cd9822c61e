// The backend's grant table in the simulator: ring pages mapped as a second mapping of the
// guest's memory file (same bytes, no copy), data moved by grant copy with the per-segment
// GNTST status Xen's GNTTABOP_copy reports.
import { GNTST, type GrantCopyBatch, type GrantPage, type GrantTable, PAGE_SIZE, type RingMapping } from '../xen/grant-table';
import { native } from '../native/addon';
import { releaseWholePages } from '../xen/pool-pages';
import type { GuestMemoryView } from './guest-memory';

export class SimGrantTable implements GrantTable {
  /** Segments copied and batches (copy calls) made, for tests and stats. */
  segmentsCopied = 0;
  batches = 0;
  /** Single grants mapped now (persistent grants), maps made in all, maps refused. */
  grantsMapped = 0;
  grantMaps = 0;
  grantMapFailures = 0;

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

  /** As gntdev: the grant must be valid for us and writable (mapped read-write); only an attached guest. */
  mapGrant(domid: number, gref: number): GrantPage | null {
    const mem = this.attached(domid);
    const e = mem?.lookupGrant(gref, this.selfDomid);
    if (!mem || !e || e.readonly) {
      this.grantMapFailures++;
      return null;
    }
    // The view of the attached guest's memory: the same bytes a mapping would show.
    let mapped = true;
    this.grantsMapped++;
    this.grantMaps++;
    return {
      bytes: mem.page(e.page),
      unmap: () => {
        if (!mapped) return;
        mapped = false;
        this.grantsMapped--;
      },
    };
  }

  /** Page-aligned, so the engine can use it for O_DIRECT I/O (--direct) as on Linux; lazily
   * mapped as on Linux. */
  allocPool(bytes: number): Uint8Array {
    return new Uint8Array(native().mapPool(Math.max(PAGE_SIZE, Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE)), 0, bytes);
  }

  releasePool(pool: Uint8Array, offset: number, length: number, busy = false): void {
    releaseWholePages(pool, offset, length, undefined, !busy);
  }

  copy(batch: GrantCopyBatch, pool: Uint8Array): void {
    this.batches++;
    for (let i = 0; i < batch.count; i++) {
      batch.status[i] = this.copyOne(batch, i, pool);
      if (batch.status[i] === GNTST.okay) this.segmentsCopied++;
    }
  }

  private copyOne(batch: GrantCopyBatch, i: number, pool: Uint8Array): number {
    const mem = this.attached(batch.domid[i]!);
    if (!mem) return GNTST.bad_domain;
    const off = batch.guestOffset[i]!;
    const len = batch.length[i]!;
    const at = batch.poolOffset[i]!;
    const e = mem.lookupGrant(batch.gref[i]!, this.selfDomid);
    if (!e) return GNTST.bad_gntref;
    if (off + len > PAGE_SIZE) return GNTST.bad_copy_arg;
    if (at < 0 || at + len > pool.length) return GNTST.general_error;
    const toGuest = batch.toGuest[i] === 1;
    if (toGuest && e.readonly) return GNTST.permission_denied;
    const page = mem.page(e.page);
    if (toGuest) page.set(pool.subarray(at, at + len), off);
    else pool.set(page.subarray(off, off + len), at);
    return GNTST.okay;
  }

  close(): void {
    /* nothing held beyond the mappings, which go with their buffers */
  }
}
