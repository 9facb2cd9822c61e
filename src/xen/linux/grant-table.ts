// GrantTable over /dev/xen/gntdev (Linux include/uapi/xen/gntdev.h; xen.git
// tools/libs/gnttab/linux.c for the map and unmap order). Ring pages are mapped; data moves
// only by grant copy, one ioctl per batch.
import { setTimeout as sleep } from 'node:timers/promises';
import * as fs from 'node:fs';
import * as os from 'node:os';
import createDebug from 'debug';
import { native } from '../../native/addon';
import type { NativeAddon } from '../../native/types';
import {
  GNTST, PAGE_SIZE, type GrantCopyBatch, type GrantPage, type GrantTable, type RingMapping,
} from '../grant-table';
import { openDevice, xenError } from './errors';
import { processTiming } from './evtchn-timing';
import { GrantCopyEncoder, type PinnedBytes } from './grant-copy';
import { releaseWholePages } from '../pool-pages';
import {
  GNTDEV_DEVICE, IOCTL, SIZEOF, decodeGetOffsetForVaddr, decodeMapIndex, encodeGetOffsetForVaddr,
  encodeGrantCopy, encodeMapGrantRef, encodeUnmapGrantRef,
} from './uapi';

const debug = createDebug('afsfile:gntdev');
/** Segments still GNTST_eagain (a paged-out guest page; the kernel already retried) get this many more tries. */
export const EAGAIN_RETRIES = 3;
/** mmap of a grant can fail with EAGAIN while the page is paged out: 1 ms sleeps, bounded. */
const MMAP_EAGAIN_TRIES = 1000;
/** A blkif ring is at most 2^4 pages (max-ring-page-order 4); leave room, refuse nonsense. */
const MAX_RING_PAGES = 256;

/** Counters for status output. */
export interface GntdevStats {
  /** IOCTL_GNTDEV_GRANT_COPY calls, retries included. */
  copyIoctls: number;
  segments: number;
  /** Segments not sent: crossing the guest page or outside the pool. */
  refusedSegments: number;
  /** Segments whose final status is not GNTST_okay (refused ones included). */
  failedSegments: number;
  eagainRetries: number;
  ringsMapped: number;
  /** Single grants kept mapped (persistent grants) now, and maps refused. */
  grantsMapped: number;
  grantMapFailures: number;
}

export class LinuxGrantTable implements GrantTable {
  private readonly pools = new WeakMap<ArrayBuffer, number>();
  private readonly mappings = new Set<LinuxRingMapping>();
  private readonly encoder: GrantCopyEncoder;
  private readonly copyArg = new Uint8Array(SIZEOF.ioctl_gntdev_grant_copy);
  private readonly copyView = new DataView(this.copyArg.buffer);
  /** DEBUG=afsfile:timing: the copies' share of each round trip. */
  private readonly timing = processTiming();
  private closed = false;
  readonly stats: GntdevStats = {
    copyIoctls: 0, segments: 0, refusedSegments: 0, failedSegments: 0, eagainRetries: 0, ringsMapped: 0,
    grantsMapped: 0, grantMapFailures: 0,
  };

  /** Takes ownership of fd; probes grant copy (throws with a clear message when missing). */
  constructor(readonly fd: number, private readonly path = GNTDEV_DEVICE, private readonly addon: NativeAddon = native()) {
    this.encoder = new GrantCopyEncoder((bytes) => this.pinned(bytes));
    // libxengnttab's probe, as QEMU uses it: a copy of zero segments succeeds where supported.
    encodeGrantCopy(this.copyView, 0, 0);
    try {
      this.addon.ioctl(fd, IOCTL.GNTDEV_GRANT_COPY, this.copyArg);
    } catch (err) {
      throw xenError(`IOCTL_GNTDEV_GRANT_COPY probe on ${path}`, err,
        'this kernel\'s gntdev has no grant copy (Linux 4.8 or newer is needed); afsfile copies all data with it');
    }
  }

  /** Page-aligned memory that never moves, with its address. */
  private pinned(bytes: number): PinnedBytes {
    const size = Math.max(PAGE_SIZE, Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE);
    const ab = this.addon.allocAligned(size, PAGE_SIZE);
    return { bytes: new Uint8Array(ab), address: Number(this.addon.addressOf(ab)) };
  }

  private closedError(op: string): Error {
    return xenError(op, { errno: os.constants.errno.EBADF, message: `${op}: grant table closed` });
  }

  ioctl(op: string, request: number, arg: Uint8Array | null): number {
    if (this.closed) throw this.closedError(op);
    try {
      return this.addon.ioctl(this.fd, request, arg);
    } catch (err) {
      throw xenError(`${op} on ${this.path}`, err);
    }
  }

  async mapRing(domid: number, grefs: readonly number[]): Promise<RingMapping> {
    if (!Number.isInteger(domid) || domid < 0 || domid > 0xffff) throw new RangeError(`mapRing: bad domid ${domid}`);
    if (grefs.length < 1 || grefs.length > MAX_RING_PAGES) throw new RangeError(`mapRing: ${grefs.length} pages (1..${MAX_RING_PAGES})`);
    for (const g of grefs) if (!Number.isInteger(g) || g < 0 || g > 0xffff_ffff) throw new RangeError(`mapRing: bad grant ref ${g}`);
    const count = grefs.length;
    const what = `domain ${domid} grefs ${grefs.join(',')}`;
    const arg = encodeMapGrantRef(domid, grefs);
    this.ioctl(`IOCTL_GNTDEV_MAP_GRANT_REF(${what})`, IOCTL.GNTDEV_MAP_GRANT_REF, arg);
    const index = decodeMapIndex(arg);
    let buffer: ArrayBuffer | undefined;
    for (let tries = 1; !buffer; tries++) {
      try {
        buffer = this.addon.mmapShared(this.fd, PAGE_SIZE * count, index, true);
      } catch (err) {
        if ((err as { errno?: number }).errno === os.constants.errno.EAGAIN && tries < MMAP_EAGAIN_TRIES) {
          await sleep(1);
          continue;
        }
        // Release the gntdev slots, or they stay reserved until the fd closes.
        try {
          this.ioctl('IOCTL_GNTDEV_UNMAP_GRANT_REF', IOCTL.GNTDEV_UNMAP_GRANT_REF, encodeUnmapGrantRef(index, count));
        } catch (e) {
          debug('releasing index %s after a failed mmap: %s', index, (e as Error).message);
        }
        throw xenError(`mmap of ${this.path} for ${what}`, err);
      }
    }
    const mapping = new LinuxRingMapping(this, buffer, Number(this.addon.addressOf(buffer)), index, count);
    this.mappings.add(mapping);
    this.stats.ringsMapped++;
    debug('mapped %s at index %s', what, index);
    return mapping;
  }

  /** @internal the unmap order of libxengnttab: GET_OFFSET_FOR_VADDR, munmap, UNMAP_GRANT_REF. */
  unmapRing(m: LinuxRingMapping): void {
    this.mappings.delete(m);
    this.stats.ringsMapped--;
    const q = encodeGetOffsetForVaddr(BigInt(m.address));
    this.ioctl('IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR', IOCTL.GNTDEV_GET_OFFSET_FOR_VADDR, q);
    const { offset, count } = decodeGetOffsetForVaddr(q);
    if (count !== m.count) {
      throw xenError('IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR', { errno: os.constants.errno.EINVAL, message: `ioctl: the mapping has ${count} pages, expected ${m.count}` });
    }
    try {
      this.addon.munmapShared(m.buffer);
    } catch (err) {
      throw xenError('munmap of a ring mapping', err);
    }
    this.ioctl('IOCTL_GNTDEV_UNMAP_GRANT_REF', IOCTL.GNTDEV_UNMAP_GRANT_REF, encodeUnmapGrantRef(offset, count));
    debug('unmapped index %s (%d pages)', offset, count);
  }

  /**
   * One grant, writable (Linux blkfront grants its persistent pages writable): MAP_GRANT_REF of
   * one ref, then mmap, once; no retry on EAGAIN (a paged-out page), the caller copies instead.
   */
  mapGrant(domid: number, gref: number): GrantPage | null {
    if (!Number.isInteger(domid) || domid < 0 || domid > 0xffff) return null;
    if (!Number.isInteger(gref) || gref < 0 || gref > 0xffff_ffff) return null;
    if (this.closed) return null;
    const arg = encodeMapGrantRef(domid, [gref]);
    try {
      this.addon.ioctl(this.fd, IOCTL.GNTDEV_MAP_GRANT_REF, arg);
    } catch (err) {
      this.stats.grantMapFailures++;
      debug('MAP_GRANT_REF domain %d gref %d: %s', domid, gref, (err as Error).message);
      return null;
    }
    const index = decodeMapIndex(arg);
    let buffer: ArrayBuffer;
    try {
      buffer = this.addon.mmapShared(this.fd, PAGE_SIZE, index, true);
    } catch (err) {
      this.stats.grantMapFailures++;
      debug('mmap of domain %d gref %d: %s', domid, gref, (err as Error).message);
      this.releaseIndex(index, 1);
      return null;
    }
    this.stats.grantsMapped++;
    let done = false;
    return {
      bytes: new Uint8Array(buffer),
      unmap: () => {
        if (done) return;
        done = true;
        this.stats.grantsMapped--;
        try {
          this.addon.munmapShared(buffer);
        } catch (err) {
          debug('munmap of domain %d gref %d: %s', domid, gref, (err as Error).message);
        }
        // The index is ours (no GET_OFFSET_FOR_VADDR needed); after close the fd took it.
        if (!this.closed) this.releaseIndex(index, 1);
      },
    };
  }

  private releaseIndex(index: bigint, count: number): void {
    try {
      this.addon.ioctl(this.fd, IOCTL.GNTDEV_UNMAP_GRANT_REF, encodeUnmapGrantRef(index, count));
    } catch (e) {
      debug('UNMAP_GRANT_REF index %s: %s', index, (e as Error).message);
    }
  }

  /** Lazily mapped anonymous memory (src/native/pool.c): the kernel resolves each grant-copy
   * address when it copies (gup), so an untouched or released page costs nothing until then. */
  allocPool(bytes: number): Uint8Array {
    if (!Number.isInteger(bytes) || bytes <= 0) throw new RangeError(`allocPool: bad size ${bytes}`);
    const ab = this.addon.mapPool(Math.max(PAGE_SIZE, Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE));
    this.pools.set(ab, Number(this.addon.addressOf(ab)));
    return new Uint8Array(ab, 0, bytes);
  }

  releasePool(pool: Uint8Array, offset: number, length: number, busy = false): void {
    if (!this.pools.has(pool.buffer as ArrayBuffer)) {
      throw new TypeError('GrantTable.releasePool: the pool was not allocated by allocPool');
    }
    releaseWholePages(pool, offset, length, this.addon, !busy);
  }

  copy(batch: GrantCopyBatch, pool: Uint8Array): void {
    const base = this.pools.get(pool.buffer as ArrayBuffer);
    if (base === undefined) throw new TypeError('GrantTable.copy: the pool was not allocated by allocPool');
    const enc = this.encoder;
    let n = enc.encodeAll(batch, base + pool.byteOffset, pool.byteLength);
    this.stats.segments += batch.count;
    this.stats.refusedSegments += batch.count - n;
    const timing = this.timing;
    if (timing.enabled) timing.copyStart();
    for (let attempt = 0; n > 0; attempt++) {
      encodeGrantCopy(this.copyView, n, enc.address);
      this.stats.copyIoctls++;
      if (this.closed) throw this.closedError('IOCTL_GNTDEV_GRANT_COPY');
      try {
        this.addon.ioctl(this.fd, IOCTL.GNTDEV_GRANT_COPY, this.copyArg);
      } catch (err) {
        // Hot path: the operation's name is built only on failure.
        throw xenError(`IOCTL_GNTDEV_GRANT_COPY(${n} segments) on ${this.path}`, err);
      }
      const again = enc.readBack(batch);
      if (again === 0 || attempt >= EAGAIN_RETRIES) break;
      debug('grant copy: %d segments GNTST_eagain, retry %d', again, attempt + 1);
      this.stats.eagainRetries++;
      n = enc.encodeRetry(batch, base + pool.byteOffset);
    }
    if (timing.enabled) timing.copyEnd();
    for (let i = 0; i < batch.count; i++) if (batch.status[i] !== GNTST.okay) this.stats.failedSegments++;
  }

  close(): void {
    if (this.closed) return;
    const failures: string[] = [];
    for (const m of [...this.mappings]) {
      try {
        m.unmap();
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
    this.closed = true;
    // Closing the fd releases whatever the unmaps above could not.
    fs.closeSync(this.fd);
    if (failures.length) debug('unmapping at close: %s', failures.join('; '));
  }
}

class LinuxRingMapping implements RingMapping {
  private done = false;

  constructor(private readonly table: LinuxGrantTable, readonly buffer: ArrayBuffer, readonly address: number,
    readonly index: bigint, readonly count: number) {}

  unmap(): void {
    if (this.done) return;
    this.done = true;
    this.table.unmapRing(this);
  }
}

/** Opens /dev/xen/gntdev and checks that it can grant-copy. */
export function openGrantTable(path = GNTDEV_DEVICE, addon?: NativeAddon): LinuxGrantTable {
  const fd = openDevice(path);
  try {
    return new LinuxGrantTable(fd, path, addon ?? native());
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}
