// Persistent grants (xen/include/public/io/blkif.h, "feature-persistent"): a frontend that
// negotiated them keeps reusing the same granted pages, so the backend maps each grant once
// and keeps it mapped, as Linux blkback does (drivers/block/xen-blkback/blkback.c,
// xen_blkbk_map with persistent_gnts). A segment whose grant is kept mapped is then copied
// with memcpy against the mapping: no grant-copy hypercall, no page pinning per segment.
// Everything else (no mapping yet and no room for one, a grant that cannot be mapped) is
// grant-copied as before, in one call for the rest of the batch. A read whose every page is
// kept mapped can be read from the file straight into them (views(): one copy instead of two).
//
// Bounds, so that a frontend cannot exhaust dom0 by offering ever new grefs: at most
// `maxPerDevice` mappings per device (blkback's max_pgrants default, 1056), all devices of the
// process together at most their PersistentBudget (4 KiB each; one mmap each, so this also
// bounds the process's VMAs), and after `MAX_MAP_FAILURES` refused maps none is tried again
// until the next connection. Mappings are never replaced: once full, new grefs are copied.
// Everything is unmapped when the device's last ring goes (disconnect) or the engine closes,
// but never while a read into the mappings is in flight (the engine defers unmapAll until
// then: an unmapped range could be mapped again by something else before the kernel writes).
import { GNTST, PAGE_SIZE, GrantCopyBatch, type GrantPage, type GrantTable } from '../xen/grant-table';

/** Linux blkback's max_pgrants default (xen_blkif_max_pgrants, drivers/block/xen-blkback/blkback.c). */
export const DEFAULT_MAX_PERSISTENT_GRANTS = 1056;
/** Mapped pages of all the devices of one process (64 MiB of mappings; well below vm.max_map_count). */
export const DEFAULT_PERSISTENT_PAGES_PER_PROCESS = 16384;
/** Refused maps after which a device stops trying for the rest of the connection. */
export const MAX_MAP_FAILURES = 64;

/** Pages mapped by all the devices of a process. */
export class PersistentBudget {
  private used = 0;

  constructor(readonly pages: number) {}

  get pagesInUse(): number {
    return this.used;
  }

  /** One more page if it fits (strictly: held for a connection's life, never a progress case). */
  take(): boolean {
    if (this.used >= this.pages) return false;
    this.used++;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

let processBudget: PersistentBudget | undefined;

/** The process's shared budget (module state: one per process). */
export function processPersistentBudget(): PersistentBudget {
  processBudget ??= new PersistentBudget(DEFAULT_PERSISTENT_PAGES_PER_PROCESS);
  return processBudget;
}

/**
 * AFSFILE_PERSISTENT (inherited by the device processes): unset, empty or 0: off; 1: on with
 * blkback's limit; N > 1: on with at most N mappings per device.
 */
export function persistentFromEnv(value = process.env.AFSFILE_PERSISTENT): number {
  if (value === undefined || value.trim() === '') return 0;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) return 0;
  return n === 1 ? DEFAULT_MAX_PERSISTENT_GRANTS : n;
}

/** What views() needs of a planned segment (blkif/validate.ts). */
interface SegmentRef {
  readonly gref: number;
  readonly offsetInPage: number;
  readonly length: number;
}

export interface PersistentStats {
  /** Grants mapped now. */
  mapped: number;
  /** Segments copied through a kept mapping (memcpy). */
  hits: number;
  /** Maps refused by the hypervisor (or the platform) since the connection began. */
  mapFailures: number;
  /** Maps not tried: the device's or the process's limit was reached. */
  overLimit: number;
  /** Reads done straight into kept mappings (no pool, no copy to the guest). */
  direct: number;
}

export class PersistentGrants {
  private readonly pages = new Map<number, GrantPage>();
  private domid = -1;
  private failures = 0;
  /** The segments left for grant copy, and their index in the caller's batch. */
  private rest: GrantCopyBatch | undefined;
  private restIndex: Int32Array | undefined;
  readonly st: PersistentStats = { mapped: 0, hits: 0, mapFailures: 0, overLimit: 0, direct: 0 };

  constructor(
    private readonly grants: GrantTable,
    readonly maxPerDevice: number,
    private readonly budget: PersistentBudget = processPersistentBudget(),
  ) {}

  /** Whether the platform can keep grants mapped at all. */
  get supported(): boolean {
    return this.maxPerDevice > 0 && typeof this.grants.mapGrant === 'function';
  }

  /** The frontend of domain `domid` negotiated persistent grants (a new connection). Callers
   * unmap another domain's mappings first (unmapAll). */
  enable(domid: number): void {
    if (this.domid !== domid && this.pages.size > 0) throw new Error('persistent grants: another domain\'s are mapped');
    this.domid = domid;
  }

  /** No more use of the mappings (they stay until unmapAll). */
  disable(): void {
    this.domid = -1;
  }

  /** Whether anything is mapped. */
  get mappedCount(): number {
    return this.pages.size;
  }

  get active(): boolean {
    return this.domid >= 0;
  }

  /** Unmaps every kept grant (nothing may be reading into them) and forgets the frontend. */
  unmapAll(): void {
    for (const page of this.pages.values()) page.unmap();
    this.budget.give(this.pages.size);
    this.pages.clear();
    this.st.mapped = 0;
    this.failures = 0;
  }

  /**
   * The pieces of guest memory a request's segments name, in order, when every one is (or
   * can now be) kept mapped; null otherwise (the request goes through the pool).
   */
  views(domid: number, segments: readonly SegmentRef[]): Uint8Array[] | null {
    if (domid !== this.domid) return null;
    const out: Uint8Array[] = [];
    for (const s of segments) {
      const page = this.pages.get(s.gref) ?? this.map(s.gref);
      if (page === undefined || s.offsetInPage + s.length > PAGE_SIZE) return null;
      out.push(page.bytes.subarray(s.offsetInPage, s.offsetInPage + s.length));
    }
    this.st.direct++;
    return out;
  }

  /**
   * Every segment of the batch against `mem`, as GrantTable.copy: batch.status filled, a bad
   * segment fails only itself; throws only when the grant copy of the rest failed as a whole.
   */
  copy(batch: GrantCopyBatch, mem: Uint8Array): void {
    let rest = this.rest;
    let restIndex = this.restIndex;
    if (rest === undefined || restIndex === undefined || rest.capacity < batch.count) {
      rest = this.rest = new GrantCopyBatch(batch.capacity);
      restIndex = this.restIndex = new Int32Array(batch.capacity);
    }
    rest.reset();
    const domid = this.domid;
    const n = batch.count;
    for (let i = 0; i < n; i++) {
      const gref = batch.gref[i];
      const page = batch.domid[i] === domid ? this.pages.get(gref) ?? this.map(gref) : undefined;
      if (page === undefined) {
        restIndex[rest.count] = i;
        const toGuest = batch.toGuest[i] === 1;
        rest.add(toGuest, batch.domid[i], gref, batch.guestOffset[i], batch.length[i], batch.poolOffset[i]);
        continue;
      }
      // The checks GNTTABOP_copy makes (xen/common/grant_table.c), with the same statuses.
      const off = batch.guestOffset[i];
      const len = batch.length[i];
      const at = batch.poolOffset[i];
      if (off + len > PAGE_SIZE) {
        batch.status[i] = GNTST.bad_copy_arg;
        continue;
      }
      if (at < 0 || at + len > mem.length) {
        batch.status[i] = GNTST.general_error;
        continue;
      }
      const bytes = page.bytes;
      if (batch.toGuest[i] === 1) bytes.set(mem.subarray(at, at + len), off);
      else mem.set(bytes.subarray(off, off + len), at);
      batch.status[i] = GNTST.okay;
      this.st.hits++;
    }
    if (rest.count === 0) return;
    this.grants.copy(rest, mem);
    for (let j = 0; j < rest.count; j++) batch.status[restIndex[j]] = rest.status[j];
  }

  /** Maps gref if the limits allow; undefined: grant-copy this segment. */
  private map(gref: number): GrantPage | undefined {
    if (this.failures >= MAX_MAP_FAILURES) return undefined;
    if (this.pages.size >= this.maxPerDevice || !this.budget.take()) {
      this.st.overLimit++;
      return undefined;
    }
    const page = this.grants.mapGrant?.(this.domid, gref) ?? null;
    if (page === null) {
      this.budget.give(1);
      this.failures++;
      this.st.mapFailures++;
      return undefined;
    }
    this.pages.set(gref, page);
    this.st.mapped = this.pages.size;
    return page;
  }
}
