// Small fakes for engine unit tests: a guest whose pages are granted to us (a GrantTable with
// GNTST statuses per segment) and an in-memory image whose I/O can be held and released in any
// order, or failed with an errno. Plus a frontend driving a real FrontRing.
import { setImmediate as immediate, setTimeout as sleep } from 'node:timers/promises';
import { X86_64, type Abi, type BlkifResponse } from '../../src/blkif/abi';
import { BackRing, FrontRing, ringBytes } from '../../src/blkif/ring';
import type { BlkifRequest, RwRequest } from '../../src/blkif/request';
import type { BlockFile, IoCallback } from '../../src/engine/block-file';
import { Engine, type EngineOptions } from '../../src/engine/engine';
import type { EngineQueue } from '../../src/engine/queue';
import type { DeviceLimits } from '../../src/blkif/validate';
import { GNTST, type GrantCopyBatch, type GrantTable, type RingMapping } from '../../src/xen/grant-table';

export class FakeGrants implements GrantTable {
  readonly pages = new Map<number, { data: Uint8Array; readonly: boolean }>();
  private next = 8;
  batches = 0;
  poolBytes = 0;

  grant(data: Uint8Array = new Uint8Array(4096), readonly = false): number {
    const g = this.next++;
    this.pages.set(g, { data, readonly });
    return g;
  }
  page(g: number): Uint8Array {
    return this.pages.get(g)!.data;
  }
  mapRing(): Promise<RingMapping> {
    throw new Error('not used');
  }
  allocPool(bytes: number): Uint8Array {
    this.poolBytes += bytes;
    return new Uint8Array(bytes);
  }
  releases = 0;
  releasePool(pool: Uint8Array, offset: number, length: number): void {
    this.releases++;
    pool.fill(0, offset, offset + length); // what MADV_DONTNEED leaves
  }
  copy(batch: GrantCopyBatch, pool: Uint8Array): void {
    this.batches++;
    for (let i = 0; i < batch.count; i++) {
      const p = this.pages.get(batch.gref[i]);
      const off = batch.guestOffset[i];
      const len = batch.length[i];
      const at = batch.poolOffset[i];
      if (!p) batch.status[i] = GNTST.bad_gntref;
      else if (off + len > 4096) batch.status[i] = GNTST.bad_copy_arg;
      else if (batch.toGuest[i] && p.readonly) batch.status[i] = GNTST.permission_denied;
      else {
        if (batch.toGuest[i]) p.data.set(pool.subarray(at, at + len), off);
        else pool.set(p.data.subarray(off, off + len), at);
        batch.status[i] = GNTST.okay;
      }
    }
  }
  close(): void {}
}

type Op = { kind: 'read' | 'write' | 'fsync'; offset: number; length: number; run: () => void };

/** An in-memory image. `hold` keeps I/O pending until release(); `fail` makes the next calls fail. */
export class MemFile implements BlockFile {
  readonly data: Uint8Array;
  readonly readOnly: boolean;
  canDiscard = true;
  hold = false;
  /** Complete each operation before the call returns (as Image's page-cache hits and inline
   * writes do); errors still come later. */
  inline = false;
  readonly pending: Op[] = [];
  /** Every operation in the order it was started: "write@4096", "fsync", ... */
  readonly log: string[] = [];
  fsyncs = 0;
  peakPending = 0;
  private failures: Array<{ kind: string; code: string; times: number }> = [];
  readonly discards: Array<[number, number]> = [];

  constructor(readonly size: number, readOnly = false) {
    this.data = new Uint8Array(size);
    this.readOnly = readOnly;
  }

  failNext(kind: 'read' | 'write' | 'fsync', code: string, times = 1): void {
    this.failures.push({ kind, code, times });
  }

  private failure(kind: string): NodeJS.ErrnoException | null {
    const f = this.failures.find((x) => x.kind === kind && x.times > 0);
    if (!f) return null;
    f.times--;
    return Object.assign(new Error(`${kind}: ${f.code}`), { code: f.code });
  }

  /** I/O the engine asked for outside [0, size): must stay 0. */
  outOfBounds = 0;

  private submit(kind: Op['kind'], offset: number, length: number, work: () => void, cb: IoCallback): void {
    if (kind !== 'fsync' && (offset < 0 || offset + length > this.size || !Number.isInteger(offset))) {
      this.outOfBounds++;
      setImmediate(() => cb(Object.assign(new Error('out of bounds'), { code: 'EINVAL' })));
      return;
    }
    this.log.push(kind === 'fsync' ? 'fsync' : `${kind}@${offset}`);
    const run = () => {
      const err = this.failure(kind);
      if (!err) work();
      cb(err);
    };
    if (this.hold) {
      this.pending.push({ kind, offset, length, run });
      this.peakPending = Math.max(this.peakPending, this.pending.length);
    } else if (this.inline && this.failures.every((f) => f.kind !== kind || f.times === 0)) run();
    else setImmediate(run);
  }

  read(buf: Uint8Array, offset: number, cb: IoCallback): void {
    this.submit('read', offset, buf.length, () => buf.set(this.data.subarray(offset, offset + buf.length)), cb);
  }
  write(buf: Uint8Array, offset: number, cb: IoCallback): void {
    const copy = buf.slice(); // what pwrite would see at submission
    this.submit('write', offset, buf.length, () => this.data.set(copy, offset), cb);
  }
  fsync(cb: IoCallback): void {
    this.submit('fsync', 0, 0, () => this.fsyncs++, cb);
  }
  discard(offset: number, length: number, cb: IoCallback): void {
    if (offset < 0 || offset + length > this.size) this.outOfBounds++;
    this.discards.push([offset, length]);
    this.data.fill(0, offset, offset + length);
    cb(null);
  }

  /** Completes held operation i (index into pending) now. */
  release(i = 0): Op {
    const [op] = this.pending.splice(i, 1);
    op.run();
    return op;
  }
  releaseAll(): void {
    while (this.pending.length) this.release(0);
  }
}

export const LIMITS: DeviceLimits = { sectors: 2048n, readOnly: false, maxIndirectSegments: 256, discard: true, flush: true, barrier: true };

/** One ring driven by a test frontend, served by an engine. */
export class Rig {
  readonly mem: ArrayBuffer;
  readonly front: FrontRing;
  readonly grants: FakeGrants;
  readonly engine: Engine;
  readonly queue: EngineQueue;
  notifies = 0;
  broken: string | undefined;
  readonly responses: BlkifResponse[] = [];
  private nextId = 1n;

  constructor(readonly file: BlockFile, opts: { order?: number; abi?: Abi; limits?: DeviceLimits; engine?: EngineOptions; grants?: FakeGrants; engineInstance?: Engine } = {}) {
    const abi = opts.abi ?? X86_64;
    this.mem = new ArrayBuffer(ringBytes(opts.order ?? 0));
    this.front = new FrontRing(this.mem, abi);
    this.grants = opts.grants ?? new FakeGrants();
    this.engine = opts.engineInstance ?? new Engine(file, this.grants, opts.limits ?? LIMITS, { fsyncIntervalMs: 0, ...opts.engine });
    this.queue = this.engine.addQueue(new BackRing(this.mem, abi), 1, {
      notify: () => this.notifies++,
      broken: (why) => (this.broken = why),
    });
  }

  id(): bigint {
    return this.nextId++;
  }

  /** Puts requests on the ring, pushes, kicks the engine when the ring says so. */
  submit(...reqs: BlkifRequest[]): void {
    for (const r of reqs) this.front.putRequest(r);
    if (this.front.pushRequests()) this.engine.kick();
  }

  /** Collects responses until `n` have arrived (or throws after ~2 s). */
  async collect(n: number, timeoutMs = 2000): Promise<BlkifResponse[]> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      while (this.front.unconsumedResponses() > 0) this.responses.push(this.front.takeResponse());
      if (this.responses.length >= n) return this.responses;
      if (Date.now() > until) throw new Error(`only ${this.responses.length} of ${n} responses`);
      this.front.finalCheckForResponses();
      await tick();
    }
  }
}

export function tick(ms = 0): Promise<void> {
  return ms > 0 ? sleep(ms) : immediate();
}

export async function ticks(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await tick();
}

export function rwReq(operation: number, id: bigint, sector: bigint, grefs: number[], first = 0, last = 7): RwRequest {
  return { kind: 'rw', operation, innerOperation: operation, nrSegments: grefs.length, handle: 0, id, sectorNumber: sector, segments: grefs.map((gref) => ({ gref, firstSect: first, lastSect: last })), indirectGrefs: [] };
}

export function pattern(seed: number, n = 4096): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 31 + i * 7) & 0xff;
  return b;
}
