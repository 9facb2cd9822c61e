// Executes the requests of one device (all its rings share one budget and one buffer pool).
//
// Each pump (scheduled with setImmediate when an event arrives or an I/O completes):
//   1. copy the data of finished reads to the guests: one grant-copy batch;
//   2. take every request that fits the budget from every ring, copied out once and validated;
//      copy all indirect descriptor pages in one batch, then all write data in one batch;
//   3. start the I/O that ordering allows (barriers wait for everything earlier and hold
//      everything later; flushes wait for earlier writes);
//   4. publish responses in ring order (slot i only when every earlier slot is answered), push,
//      and notify once when the frontend asked for it; RING_FINAL_CHECK_FOR_REQUESTS when idle.
// When the budget is full nothing more is taken: the ring is the queue.
import createDebug from 'debug';
import { performance } from 'node:perf_hooks';
import { BlkifOp, BlkifStatus, DEFAULT_MAX_INDIRECT_SEGMENTS, MAX_INDIRECT_PAGES_PER_REQUEST, MAX_SEGMENTS_PER_REQUEST, PAGE_SIZE } from '../blkif/constants';
import { readIndirectSegments } from '../blkif/codec';
import type { BackRing } from '../blkif/ring';
import { planIndirect, planRequest, type DeviceLimits, type Plan } from '../blkif/validate';
import { GNTST, GrantCopyBatch, type GrantTable } from '../xen/grant-table';
import type { BlockFile } from './block-file';
import {
  COPY_OUT, DONE, INDIRECT, IO, RequestContext, STEP_DISCARD, STEP_FSYNC, STEP_READ, STEP_WRITE, STEPS_BARRIER_WRITE,
  STEPS_DISCARD,
  STEPS_FLUSH_WRITE, STEPS_FSYNC, STEPS_READ, STEPS_WRITE, WAIT_MEM, WAIT_ORDER,
} from './context';
import { PagePool } from './pool';
import type { PoolBudget } from './pool-budget';
import { PoolMemory } from './pool-memory';
import { EngineQueue, type QueueHooks } from './queue';
import { nextRetryDelay } from './backoff';
import { DEFAULT_FSYNC_INTERVAL_MS, Durability } from './durability';
import { emptyStats, recordLatency, type EngineStats } from './stats';
import { isTransient } from './transient';
import { PersistentGrants, persistentFromEnv, type PersistentBudget } from './persistent-grants';

const log = createDebug('afsfile:engine');

export interface EngineOptions {
  /** Requests in flight per device (default 32). */
  maxRequests?: number;
  /** Bytes of data buffers per device (default 16 MiB; raised to fit one largest request). */
  maxBytes?: number;
  /** fsync this often while dirty (default 5000 ms; 0 disables the timer). */
  fsyncIntervalMs?: number;
  /**
   * Write data kept per device until an fsync covers it, to write it again after a failed
   * fsync (default 32 MiB; durability.ts). 0 keeps nothing: for O_DIRECT images, whose kept
   * copies would not be aligned.
   */
  keepBytes?: number;
  /** Retry transient file errors this long before the guest sees an error (default 120 s, as --hold-timeout). */
  holdTimeoutMs?: number;
  /** Called on every transient error (the worker kicks renew on EACCES). */
  onTransientError?(code: string, op: string): void;
  /** Shared with the other devices of this process: their data buffers together stay within it. */
  budget?: PoolBudget;
  /** Likewise for the write data kept until an fsync covers it (durability.ts). */
  keepBudget?: PoolBudget;
  /**
   * Write data grant-copied straight into the kept-data arena, whose pages stay warm (default
   * true; false: into the pool, copied to the arena when the write completes, the arena's pages
   * given back at every fsync, as before; AFSFILE_KEEP=copy, for comparing the two in one boot).
   */
  keepInPlace?: boolean;
  /**
   * Grants kept mapped per device when the frontend negotiated feature-persistent (0: the
   * feature is not offered; default AFSFILE_PERSISTENT, off; persistent-grants.ts).
   */
  persistentGrants?: number;
  /** The process's bound on kept mappings (default: one shared by the process's devices). */
  persistentBudget?: PersistentBudget;
  /**
   * Buffered reads may go from the file straight into kept-mapped guest pages (default true).
   * False for O_DIRECT images: direct I/O into foreign pages is unsafe (they go through the pool).
   */
  foreignIo?: boolean;
  /** Idle time after which the buffer pool's memory goes back to the host (default 3000 ms; 0: never). */
  poolReleaseIdleMs?: number;
  /** The engine took a request while none was in flight (the status file is due). */
  onBusy?(): void;
  /** Lines an administrator must see (default: stderr via debug only). */
  warn?(message: string): void;
}

export const DEFAULT_MAX_REQUESTS = 32;
export const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;
export { DEFAULT_FSYNC_INTERVAL_MS };
export const DEFAULT_HOLD_TIMEOUT_MS = 120_000; // --hold-timeout default
/** Read once: imported constants are accessors in the CommonJS output, and this is per segment. */
const GNTST_OKAY = GNTST.okay;
/** Names of the I/O steps for messages and isTransient, by STEP_* value. */
const OP_NAMES = ['read', 'write', 'fsync', 'discard'] as const;

/** Why a request failed, for the log and `afsfile status`: how long it was held (heldMs < 0: it
 * was not) and the error's own message when it says more than its code (the token gate's names
 * the token and when it lapsed). */
function failReason(op: string, err: NodeJS.ErrnoException, heldMs: number): string {
  const code = err.code ?? err.message;
  const more = err.code !== undefined && err.message && !err.message.startsWith(err.code) ? ` (${err.message})` : '';
  const held = heldMs >= 0 ? ` after ${Math.round(heldMs / 1000)} s held (hold-timeout)` : '';
  return `${op} failed${held}: ${code}${more}`;
}

export class Engine {
  readonly maxRequests: number;
  readonly maxBytes: number;
  private holdMs: number;
  private readonly pool: Uint8Array;
  private readonly pages: PagePool;
  /** Releases the pool's memory after an idle while. */
  private readonly poolMemory: PoolMemory;
  private readonly contexts: RequestContext[];
  private readonly freeList: RequestContext[];
  /** Every context not FREE, in take order. */
  private readonly order: RequestContext[] = [];
  /** Contexts waiting for data memory, FIFO (strict, so no later request starves an earlier one). */
  private readonly memWait: RequestContext[] = [];
  private readonly queues: EngineQueue[] = [];
  private readonly batch: GrantCopyBatch;
  /** Contexts of the batch being built (reused array). */
  private readonly batched: RequestContext[] = [];
  /** Write data copied straight into the kept-data arena (Durability.reserve), and its contexts. */
  private readonly keepBatch: GrantCopyBatch;
  private readonly keepBatched: RequestContext[] = [];
  private readonly taken: RequestContext[] = [];
  private readonly st: EngineStats = emptyStats();
  private nextQueueId = 0;
  private rr = 0;
  private scheduled = false;
  /**
   * The clock, read at most once per take and once per publish, not per request: under Xen a
   * clock read can be a system call (a PV dom0 without the vDSO clock), and latency buckets
   * need no finer grain than a pump.
   */
  private takeNow = 0;
  private publishNow = 0;
  /**
   * Inside pump(), before publish(): a request finished now is answered by that publish(), so
   * finish() schedules no pump of its own (which would find nothing to do: one empty pump per
   * request at queue depth 1).
   */
  private pumping = false;
  /** Inside pump(), after issue(): a request finished now may let one waiting for order start. */
  private issued = false;
  /** Inside issue(): a read answered synchronously waits for the copy-out right after it. */
  private issuing = false;
  /** Reads that completed synchronously during this issue(). */
  private readsNow = 0;
  private stopping = false;
  private closed = false;
  /** Dirty tracking, the periodic fsync and flush(). */
  private readonly dur: Durability;
  private drainWaiters: Array<() => void> = [];
  /** Reads and writes in the file now (Durability waits for none before writing again). */
  private fileOps = 0;
  private quietWaiters: Array<() => void> = [];
  /** Contexts whose read/write waits for Durability (a recovery, or room for kept data). */
  private held: RequestContext[] = [];
  private readonly pumpBound = () => this.pump();
  /** Woken by the process budget when memory was given back. */
  private readonly budgetWake = () => this.schedule();
  /** Kept grant mappings (null: feature-persistent not offered). */
  private readonly pgrants: PersistentGrants | null;
  /** Reads into kept mappings in flight: nothing is unmapped until they are done. */
  private foreignOps = 0;
  /** The mappings are to go once foreignOps is 0; then persistence for this domain (or -1). */
  private unmapWanted = false;
  private enableAfterUnmap = -1;
  private readonly directReads: boolean;

  constructor(
    private readonly file: BlockFile,
    private readonly grants: GrantTable,
    readonly limits: DeviceLimits,
    private readonly opts: EngineOptions = {},
  ) {
    this.maxRequests = Math.max(1, opts.maxRequests ?? DEFAULT_MAX_REQUESTS);
    const largest = Math.max(MAX_SEGMENTS_PER_REQUEST, limits.maxIndirectSegments || DEFAULT_MAX_INDIRECT_SEGMENTS) * PAGE_SIZE;
    this.maxBytes = Math.max(largest, Math.ceil((opts.maxBytes ?? DEFAULT_MAX_BYTES) / PAGE_SIZE) * PAGE_SIZE);
    this.holdMs = opts.holdTimeoutMs ?? DEFAULT_HOLD_TIMEOUT_MS;
    const indirectBytes = MAX_INDIRECT_PAGES_PER_REQUEST * PAGE_SIZE;
    // One pool: data pages first, then a fixed area of indirect descriptor pages per context.
    this.pool = grants.allocPool(this.maxBytes + this.maxRequests * indirectBytes);
    this.pages = new PagePool(this.maxBytes);
    this.poolMemory = new PoolMemory(
      () => this.order.length > 0,
      () => this.grants.releasePool(this.pool, 0, this.pool.length),
      opts.poolReleaseIdleMs,
    );
    const onIo = (ctx: RequestContext, err: NodeJS.ErrnoException | null) => this.ioDone(ctx, err);
    const retry = (ctx: RequestContext) => this.runStep(ctx);
    this.contexts = [];
    for (let i = 0; i < this.maxRequests; i++)
      this.contexts.push(new RequestContext(this.maxBytes + i * indirectBytes, onIo, retry));
    this.freeList = this.contexts.slice().reverse();
    const perRequest = Math.max(MAX_SEGMENTS_PER_REQUEST, limits.maxIndirectSegments, MAX_INDIRECT_PAGES_PER_REQUEST);
    this.batch = new GrantCopyBatch(this.maxRequests * perRequest);
    this.keepBatch = new GrantCopyBatch(this.maxRequests * perRequest);
    const pg = new PersistentGrants(grants, opts.persistentGrants ?? persistentFromEnv(), opts.persistentBudget);
    this.pgrants = pg.supported ? pg : null;
    this.directReads = this.pgrants !== null && opts.foreignIo !== false && typeof file.readv === 'function' &&
      (file as { direct?: boolean }).direct !== true;
    this.dur = new Durability(file, this.st, this.holdMs, {
      onTransientError: opts.onTransientError,
      warn: (m) => this.warn(m),
      quiet: (cb) => (this.fileOps === 0 ? cb() : this.quietWaiters.push(cb)),
      resume: (err) => this.resumeHeld(err),
    }, {
      fsyncIntervalMs: opts.fsyncIntervalMs ?? DEFAULT_FSYNC_INTERVAL_MS,
      keepBytes: opts.keepBytes,
      keepBudget: opts.keepBudget,
      keepInPlace: opts.keepInPlace ?? process.env.AFSFILE_KEEP !== 'copy',
      arena: {
        alloc: (bytes) => grants.allocPool(bytes),
        release: (mem, at, len, busy) => grants.releasePool(mem, at, len, busy),
      },
    });
  }

  /** New timings from a reloaded config (SIGHUP), for the requests from now on. */
  retune(t: { holdTimeoutMs?: number; fsyncIntervalMs?: number }): void {
    if (t.holdTimeoutMs !== undefined) this.holdMs = t.holdTimeoutMs;
    this.dur.retune(t);
  }

  /** Whether to advertise feature-persistent (the setting is on and the platform can map grants). */
  get offersPersistentGrants(): boolean {
    return this.pgrants !== null;
  }

  /**
   * Adds a ring (a queue); returns the handle to kick when its event channel fires.
   * `persistent`: the frontend negotiated feature-persistent (blkif.h): its grants are kept
   * mapped (if offersPersistentGrants) until its last ring is removed.
   */
  addQueue(ring: BackRing, domid: number, hooks: QueueHooks, persistent = false): EngineQueue {
    const q = new EngineQueue(this.nextQueueId++, ring, domid, hooks, this.maxRequests);
    this.queues.push(q);
    if (persistent && this.pgrants) {
      // Another connection's mappings still wait for reads into them: grant copy until then.
      if (this.unmapWanted) this.enableAfterUnmap = domid;
      else if (this.pgrants.mappedCount > 0 && !this.pgrants.active) {
        this.pgrants.unmapAll(); // nothing reads into them (foreignOps is 0)
        this.pgrants.enable(domid);
      } else this.pgrants.enable(domid);
    }
    this.schedule();
    return q;
  }

  /**
   * Forgets a ring: nothing more is read from or written to it. Requests of it still in flight
   * finish their file I/O (so nothing half-done is lost) but are not answered.
   */
  removeQueue(q: EngineQueue): void {
    q.dead = true;
    const i = this.queues.indexOf(q);
    if (i >= 0) this.queues.splice(i, 1);
    // Nothing copies for a dead ring any more (every copy checks queue.dead first).
    if (this.queues.length === 0) this.releaseMappings();
    this.schedule();
  }

  /** The last ring went: no more use of the mappings; unmapped once no read goes into them. */
  private releaseMappings(): void {
    const pg = this.pgrants;
    if (pg === null) return;
    pg.disable();
    this.enableAfterUnmap = -1;
    if (this.foreignOps === 0) pg.unmapAll();
    else this.unmapWanted = true;
  }

  /** The ring has new requests (its event channel fired). */
  kick(): void {
    this.schedule();
  }

  /** Stop taking requests; resolves when every taken request is answered (or dropped). */
  drain(): Promise<void> {
    this.stopping = true;
    this.schedule();
    return new Promise((resolve) => {
      this.drainWaiters.push(resolve);
      this.checkDrained();
    });
  }

  /** Take requests again after drain(). */
  resume(): void {
    this.stopping = false;
    this.schedule();
  }

  get inFlight(): number {
    return this.order.length;
  }

  get dirty(): boolean {
    return this.dur.dirty;
  }

  /**
   * fsync with transient retries up to hold-timeout (or `deadlineMs` if given, whichever is
   * shorter). Resolves when the file is clean as of the call; rejects with the last error.
   */
  flush(deadlineMs?: number): Promise<void> {
    return this.dur.flush(deadlineMs);
  }

  /**
   * New tokens: the image is opened again and the kept writes written again through it and
   * fsynced before any other I/O starts (durability.ts refresh). cb as Durability's.
   */
  refresh(cb: (err: NodeJS.ErrnoException | null) => void): void {
    this.dur.refresh(cb);
  }

  /** Stops the periodic fsync timer; the engine takes nothing more. Does not fsync. */
  close(): void {
    this.closed = true;
    this.stopping = true;
    this.dur.close();
    this.poolMemory.close();
    for (const q of this.queues) q.dead = true;
    this.queues.length = 0;
    this.releaseMappings();
  }

  stats(): EngineStats {
    this.st.inFlight = this.order.length;
    this.st.inFlightBytes = this.pages.bytesInUse;
    this.st.dirty = this.dirty;
    let held = this.held.length;
    for (const ctx of this.order) if (ctx.state === IO && ctx.firstErrorAt !== 0) held++; // transient retry
    this.st.held = held;
    const out: EngineStats = { ...this.st, requests: { ...this.st.requests }, latency: this.st.latency.slice(), stalls: { ...this.st.stalls } };
    if (this.pgrants) out.persistentGrants = { ...this.pgrants.st };
    return out;
  }

  // ---------------------------------------------------------------------------------------

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.pumpBound);
  }

  private pump(): void {
    this.scheduled = false;
    this.pumping = true;
    try {
      this.copyOut();
      this.take();
      this.issuing = true;
      this.readsNow = 0;
      const file = this.file;
      file.cork?.();
      try {
        this.issue();
      } finally {
        this.issued = true;
        // One submission for everything this pump started (io_uring); what completed at once
        // (page-cache reads, inline writes) is answered below, in this pump.
        try {
          file.uncork?.();
        } finally {
          this.issuing = false;
        }
      }
      // Reads the page cache answered inline: copied to the guest and answered in this pump,
      // not the next (one event-loop turn less per request; bench/README.md has the figure).
      if (this.readsNow > 0) this.copyOut();
    } finally {
      this.pumping = false;
      this.issued = false;
    }
    this.publish();
    this.checkDrained();
  }

  private checkDrained(): void {
    if (this.order.length > 0 || this.drainWaiters.length === 0) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  // --- 2. taking requests -----------------------------------------------------------------

  private take(): void {
    const taken = this.taken;
    taken.length = 0;
    this.takeNow = 0;
    // Requests still waiting for memory mean the budget is spent: leave the rest in the rings.
    if (!this.stopping && this.memWait.length === 0) {
      const nq = this.queues.length;
      for (let k = 0; k < nq && this.freeList.length > 0; k++) {
        if (this.queues.length === 0) break; // a broken ring removes itself while we iterate
        const q = this.queues[(this.rr + k) % this.queues.length];
        if (!q.dead) this.takeFrom(q, taken);
      }
      this.rr = nq > 0 ? (this.rr + 1) % nq : 0;
      if (this.freeList.length === 0) this.countSlotStalls();
    }
    if (taken.length > 0) this.copyIndirect(taken);
    this.allocate();
  }

  /** Every request slot is in use: the requests left in the rings wait for one (each counted
   * once, by its ring index, however many pumps it waits). */
  private countSlotStalls(): void {
    for (const q of this.queues) {
      if (q.dead) continue;
      const waiting = q.ring.unconsumed();
      if (waiting === 0) continue;
      const cons = q.ring.reqCons;
      const ahead = q.stalledUpTo === null ? 0 : (q.stalledUpTo - cons) >>> 0;
      this.st.stalls.slot += waiting - (ahead <= q.ring.size ? Math.min(ahead, waiting) : 0);
      q.stalledUpTo = (cons + waiting) >>> 0;
    }
  }

  /** Copies the indirect descriptor pages of everything just taken in one batch, and plans them. */
  private copyIndirect(taken: RequestContext[]): void {
    const batch = this.beginBatch();
    for (const ctx of taken) {
      if (ctx.state !== INDIRECT || ctx.plan === null || ctx.plan.kind !== 'indirect') continue;
      const grefs = ctx.plan.grefs;
      ctx.batchStart = batch.count;
      for (let i = 0; i < grefs.length; i++) batch.add(false, ctx.queue!.domid, grefs[i], 0, PAGE_SIZE, ctx.indirectOffset + i * PAGE_SIZE);
      ctx.batchCount = grefs.length;
      this.batched.push(ctx);
    }
    this.runBatch(batch, this.batched, this.pool, this.indirectCopied);
  }

  /** After the indirect pages of ctx were copied (status: the first bad segment's, or okay). */
  private readonly indirectCopied = (ctx: RequestContext, status: number): void => {
    if (status !== GNTST_OKAY) {
      return this.finish(ctx, BlkifStatus.ERROR, `indirect descriptor page: grant copy status ${status}`);
    }
    const req = ctx.indirectReq!;
    const segs = readIndirectSegments(this.pool, ctx.indirectOffset, req.nrSegments);
    const plan = planIndirect(req, segs, this.limits);
    ctx.indirectReq = null;
    if (plan.kind === 'fail') return this.finish(ctx, plan.status, plan.reason);
    this.prepare(ctx, plan);
  };

  private takeFrom(q: EngineQueue, taken: RequestContext[]): void {
    const ring = q.ring;
    for (;;) {
      if (ring.broken()) {
        this.breakQueue(q, `req_prod ${ring.reqProd} is more than ${ring.size} ahead of rsp_prod ${ring.rspProdPvt}`);
        return;
      }
      if (this.freeList.length === 0) return; // budget full: leave the rest in the ring
      if (ring.unconsumed() === 0) {
        if (ring.finalCheckForRequests()) continue;
        return;
      }
      const ctx = this.freeList.pop()!;
      this.poolMemory.used();
      if (this.order.length === 0) this.opts.onBusy?.();
      const req = ring.takeRequest();
      ctx.queue = q;
      ctx.id = req.id;
      // The response carries the operation the guest asked for; for INDIRECT that is its
      // indirect_op, as Linux blkback answers and Linux blkfront checks ("wrong operation").
      ctx.operation = req.kind === 'rw' ? req.innerOperation : req.operation;
      if (this.takeNow === 0) this.takeNow = performance.now();
      ctx.startedAt = this.takeNow;
      ctx.state = WAIT_MEM;
      this.order.push(ctx);
      q.push(ctx);
      taken.push(ctx);
      this.count(req.operation, req.kind === 'rw' ? req.innerOperation : req.operation);
      const plan = planRequest(req, this.limits);
      if (plan.kind === 'fail') {
        this.finish(ctx, plan.status, plan.reason);
      } else if (plan.kind === 'indirect') {
        ctx.plan = plan;
        ctx.indirectReq = req.kind === 'rw' ? req : null;
        ctx.state = INDIRECT;
        ctx.isWrite = req.kind === 'rw' && req.innerOperation === BlkifOp.WRITE;
        this.memWait.push(ctx); // keeps its place in the FIFO while its pages are copied
      } else {
        this.prepare(ctx, plan);
      }
    }
  }

  private prepare(ctx: RequestContext, plan: Plan): void {
    ctx.plan = plan;
    switch (plan.kind) {
      case 'read':
      case 'write': {
        ctx.isWrite = plan.kind === 'write';
        ctx.isBarrier = plan.barrier;
        ctx.waitsForWrites = plan.barrier || plan.flushFirst;
        ctx.steps = plan.kind === 'read' ? STEPS_READ : plan.barrier ? STEPS_BARRIER_WRITE : plan.flushFirst ? STEPS_FLUSH_WRITE : STEPS_WRITE;
        ctx.dataPages = PagePool.pagesFor(plan.bytes);
        if (ctx.state !== INDIRECT) this.memWait.push(ctx);
        ctx.state = WAIT_MEM;
        return;
      }
      case 'flush':
        ctx.isWrite = plan.barrier;
        ctx.isBarrier = plan.barrier;
        ctx.waitsForWrites = true;
        ctx.steps = STEPS_FSYNC;
        ctx.state = WAIT_ORDER;
        return;
      case 'discard':
        ctx.isWrite = true;
        ctx.steps = STEPS_DISCARD;
        ctx.state = WAIT_ORDER;
        return;
      default:
        this.finish(ctx, BlkifStatus.ERROR, `unexpected plan ${plan.kind}`);
    }
  }

  /**
   * Gives memory to waiting contexts in FIFO order; copies all new write data in one batch (two
   * when some goes to the pool and some straight into the kept-data arena).
   */
  private allocate(): void {
    const batch = this.beginBatch();
    const keepBatch = this.keepBatch;
    keepBatch.reset();
    this.keepBatched.length = 0;
    let i = 0;
    for (; i < this.memWait.length; i++) {
      const ctx = this.memWait[i];
      const plan = ctx.plan;
      // Skip what failed while its indirect pages were checked.
      if (ctx.state !== WAIT_MEM || plan === null || (plan.kind !== 'read' && plan.kind !== 'write')) continue;
      if (ctx.queue === null || ctx.queue.dead) {
        // Its ring is gone: nobody will read the answer, and its grants may be gone too.
        this.finish(ctx, BlkifStatus.ERROR, 'ring disconnected');
        continue;
      }
      if (plan.kind === 'read' && this.directReads) {
        // Every page kept mapped: the file is read straight into them, no pool, no copy-out.
        const views = this.pgrants!.views(ctx.queue.domid, plan.segments);
        if (views !== null) {
          ctx.iov = views;
          ctx.state = WAIT_ORDER;
          continue;
        }
      }
      if (plan.kind === 'write') {
        // Where the data will be kept until an fsync covers it, if there is room: no pool
        // memory, and no copy when the write completes.
        const slot = this.dur.reserve(plan.bytes);
        if (slot !== null) {
          ctx.keepSlot = slot;
          ctx.buf = slot.view;
          this.addWriteData(keepBatch, ctx, slot.at);
          this.keepBatched.push(ctx);
          continue;
        }
      }
      const budget = this.opts.budget;
      const bytes = ctx.dataPages * PAGE_SIZE;
      if (budget && !budget.take(bytes)) {
        this.countMemoryStalls(i);
        budget.wait(this.budgetWake);
        break;
      }
      const off = this.pages.alloc(ctx.dataPages);
      if (off < 0) {
        budget?.give(bytes);
        this.countMemoryStalls(i);
        break;
      }
      ctx.dataOffset = off;
      ctx.buf = poolView(ctx, this.pool, off, plan.bytes);
      if (this.pages.bytesInUse > this.st.peakInFlightBytes) this.st.peakInFlightBytes = this.pages.bytesInUse;
      if (plan.kind === 'write') {
        this.addWriteData(batch, ctx, off);
        this.batched.push(ctx);
      } else {
        ctx.state = WAIT_ORDER;
      }
    }
    dropFirst(this.memWait, i);
    this.runBatch(this.batch, this.batched, this.pool, this.writeDataCopied);
    if (this.keepBatched.length > 0) {
      this.runBatch(keepBatch, this.keepBatched, this.dur.arenaMemory(), this.writeDataCopied);
    }
  }

  /** The segments of write ctx into `batch`, its data going to `at` of the batch's memory. */
  private addWriteData(batch: GrantCopyBatch, ctx: RequestContext, at: number): void {
    const plan = ctx.plan!;
    if (plan.kind !== 'write') return;
    ctx.batchStart = batch.count;
    const domid = ctx.queue!.domid;
    for (const s of plan.segments) {
      batch.add(false, domid, s.gref, s.offsetInPage, s.length, at + (s.fileOffset - plan.fileOffset));
    }
    ctx.batchCount = plan.segments.length;
    ctx.state = IO; // not startable until its data is here
  }

  /** The buffer memory is spent: the requests from memWait[from] on wait for it. */
  private countMemoryStalls(from: number): void {
    for (let j = from; j < this.memWait.length; j++) {
      const ctx = this.memWait[j];
      if (ctx.state !== WAIT_MEM || ctx.memStalled) continue;
      ctx.memStalled = true;
      this.st.stalls.memory++;
    }
  }

  private readonly writeDataCopied = (ctx: RequestContext, status: number): void => {
    if (status !== GNTST_OKAY) this.finish(ctx, BlkifStatus.ERROR, `write data: grant copy status ${status}`);
    else ctx.state = WAIT_ORDER;
  };

  // --- grant copies: every one of the three (indirect pages, write data, read data) is built
  // with beginBatch + batch.add + batched.push and ended with runBatch ---------------------

  private beginBatch(): GrantCopyBatch {
    this.batch.reset();
    this.batched.length = 0;
    return this.batch;
  }

  /** One grant-copy call for the batch against `mem`; then done(ctx, status) per context in it. */
  private runBatch(
    batch: GrantCopyBatch, batched: RequestContext[], mem: Uint8Array, done: (ctx: RequestContext, status: number) => void,
  ): void {
    if (batched.length === 0) return;
    let ok = true;
    try {
      const pg = this.pgrants;
      if (pg !== null && pg.active) pg.copy(batch, mem);
      else this.grants.copy(batch, mem);
    } catch (err) {
      this.warn(`grant copy of ${batch.count} segments failed: ${(err as Error).message}`);
      ok = false;
    }
    for (let i = 0; i < batched.length; i++) done(batched[i], ok ? badSegment(batch, batched[i]) : GNTST.general_error);
  }

  // --- 3. ordering and I/O -----------------------------------------------------------------

  private issue(): void {
    // A recovery after a failed fsync is writing kept data again: nothing new starts.
    if (this.dur.holding) return;
    let earlierPending = false;
    let earlierWritePending = false;
    for (let i = 0; i < this.order.length; i++) {
      const ctx = this.order[i];
      if (ctx.state === WAIT_ORDER) {
        const ready = ctx.isBarrier ? !earlierPending : ctx.waitsForWrites ? !earlierWritePending : true;
        if (ready) this.start(ctx);
      }
      if (ctx.state !== DONE) {
        // Nothing after an unfinished barrier may start.
        if (ctx.isBarrier) return;
        earlierPending = true;
        if (ctx.isWrite) earlierWritePending = true;
      }
    }
  }

  private start(ctx: RequestContext): void {
    const plan = ctx.plan!;
    if (plan.kind === 'read' && (ctx.queue === null || ctx.queue.dead)) return this.finish(ctx, BlkifStatus.ERROR, 'ring disconnected');
    // Nothing to punch: fallocate(len 0) fails EINVAL, and there is nothing to do anyway.
    if (plan.kind === 'discard' && plan.bytes === 0) {
      ctx.state = IO;
      return this.finish(ctx, BlkifStatus.OKAY);
    }
    ctx.state = IO;
    ctx.stepIdx = 0;
    if (ctx.steps.length === 0) return this.finish(ctx, BlkifStatus.OKAY);
    this.runStep(ctx);
  }

  /**
   * Starts the current step of ctx (also the retry entry point).
   *
   * The file may call ctx.onIo before read() returns (BlockFile: a page-cache hit, never an
   * error). That is safe here: ioDone then only moves a read to COPY_OUT (a read is the last
   * step of its request, so nothing nests further), and neither ioDone nor finish() changes
   * `order` (only publish() does), which issue() is walking by index; a read in COPY_OUT
   * still counts as pending for the barrier and flush ordering in issue().
   */
  private runStep(ctx: RequestContext): void {
    if (ctx.state !== IO) return;
    const plan = ctx.plan!;
    switch (ctx.steps[ctx.stepIdx]) {
      case STEP_READ:
        if (plan.kind !== 'read') return;
        if (this.dur.holding) return void this.held.push(ctx);
        if (ctx.iov !== null && (ctx.queue === null || ctx.queue.dead)) {
          // Its ring went while it waited (a retry, a hold): its pages may be unmapped by now.
          return this.finish(ctx, BlkifStatus.ERROR, 'ring disconnected');
        }
        this.fileOps++;
        if (ctx.iov !== null) {
          this.foreignOps++;
          this.file.readv!(ctx.iov, plan.fileOffset, ctx.onIo);
        } else this.file.read(ctx.buf!, plan.fileOffset, ctx.onIo);
        return;
      case STEP_WRITE:
        if (plan.kind !== 'write') return;
        if (this.dur.holding || !this.dur.admit(plan.bytes, ctx.keepSlot !== null)) {
          return void this.held.push(ctx);
        }
        this.fileOps++;
        this.file.write(ctx.buf!, plan.fileOffset, ctx.onIo);
        return;
      case STEP_FSYNC:
        // Durability holds it (recovering from failed fsyncs) until hold-timeout itself.
        this.dur.sync(ctx.onIo);
        return;
      case STEP_DISCARD:
        if (plan.kind !== 'discard') return;
        if (this.dur.holding) return void this.held.push(ctx);
        this.fileOps++;
        this.file.discard(plan.fileOffset, plan.bytes, ctx.onIo);
        return;
    }
  }

  /** Durability lets I/O start again; with err a recovery gave up: writes waiting fail. */
  private resumeHeld(err: NodeJS.ErrnoException | null): void {
    const held = this.held;
    this.held = [];
    for (const ctx of held) {
      if (ctx.state !== IO) continue;
      const step = ctx.steps[ctx.stepIdx];
      if (err && (step === STEP_WRITE || step === STEP_DISCARD)) {
        const what = step === STEP_WRITE ? 'write' : 'discard';
        const why = `the kept writes could not be made durable (${err.code ?? err.message})`;
        this.finish(ctx, BlkifStatus.ERROR, `${what} refused: ${why}`, true);
      }
      else this.runStep(ctx);
    }
    this.schedule();
  }

  private ioDone(ctx: RequestContext, err: NodeJS.ErrnoException | null): void {
    const step = ctx.steps[ctx.stepIdx];
    if (step !== STEP_FSYNC && --this.fileOps === 0 && this.quietWaiters.length > 0) {
      const waiters = this.quietWaiters;
      this.quietWaiters = [];
      for (const w of waiters) w();
    }
    if (step === STEP_READ && ctx.iov !== null && --this.foreignOps === 0 && this.unmapWanted) this.unmapNow();
    if (ctx.state !== IO) return;
    const opName = OP_NAMES[step];
    if (err) {
      // A file system without hole punching: the guest is told, as blkback does (not an error
      // to hold or to shout about).
      if (step === STEP_DISCARD && err.code === 'EOPNOTSUPP') {
        return this.finish(ctx, BlkifStatus.EOPNOTSUPP, `discard: ${err.message}`);
      }
      const now = performance.now();
      if (ctx.firstErrorAt === 0) {
        ctx.firstErrorAt = now;
        ctx.retryDelayMs = 0;
      }
      // A failed fsync has been held and retried by Durability already.
      if (step !== STEP_FSYNC && isTransient(err.code, opName) && !this.closed) {
        this.opts.onTransientError?.(err.code!, opName);
        const remaining = this.holdMs - (now - ctx.firstErrorAt);
        if (remaining > 0) {
          // Held until hold-timeout has fully passed: the last wait is cut to what remains.
          ctx.retryDelayMs = nextRetryDelay(ctx.retryDelayMs);
          const delay = Math.min(ctx.retryDelayMs, remaining);
          this.st.retries++;
          log('%s of request %s: %s, retrying in %d ms', opName, ctx.id, err.code, delay);
          setTimeout(ctx.retry, delay);
          return;
        }
      }
      const heldMs = ctx.retryDelayMs > 0 ? now - ctx.firstErrorAt : -1;
      this.finish(ctx, BlkifStatus.ERROR, failReason(opName, err, heldMs), true);
      return;
    }
    ctx.firstErrorAt = 0;
    const plan = ctx.plan!;
    if (step === STEP_WRITE && plan.kind === 'write') {
      const slot = ctx.keepSlot;
      ctx.keepSlot = null; // kept from now on (or let go) by Durability
      this.dur.wrote(plan.fileOffset, ctx.buf!, slot);
      this.st.bytesWritten += plan.bytes;
    } else if (step === STEP_DISCARD && plan.kind === 'discard') {
      this.dur.discarded(plan.fileOffset, plan.bytes);
      this.st.bytesDiscarded += plan.bytes;
    } else if (step === STEP_READ && plan.kind === 'read') {
      // What the file gave may predate a store its client dropped (durability.ts).
      const iov = ctx.iov;
      if (iov === null) this.dur.overlay(plan.fileOffset, ctx.buf!);
      else for (let k = 0; k < iov.length; k++) this.dur.overlay(plan.segments[k].fileOffset, iov[k]);
      this.st.bytesRead += plan.bytes;
    }
    ctx.stepIdx++;
    if (ctx.stepIdx < ctx.steps.length) return this.runStep(ctx);
    // Read straight into the guest's pages: nothing to copy, answered now (if its ring lives).
    if (step === STEP_READ && ctx.iov !== null) {
      const dead = ctx.queue === null || ctx.queue.dead;
      return this.finish(ctx, dead ? BlkifStatus.ERROR : BlkifStatus.OKAY, dead ? 'ring disconnected' : undefined);
    }
    if (step === STEP_READ) {
      ctx.state = COPY_OUT;
      if (this.issuing) this.readsNow++;
      else this.schedule();
      return;
    }
    this.finish(ctx, BlkifStatus.OKAY);
  }

  /** No read goes into the mappings any more: unmap them, then serve a new connection's. */
  private unmapNow(): void {
    const pg = this.pgrants!;
    this.unmapWanted = false;
    pg.unmapAll();
    const domid = this.enableAfterUnmap;
    this.enableAfterUnmap = -1;
    if (domid >= 0) pg.enable(domid);
  }

  // --- 1. read data to the guests ------------------------------------------------------------

  private copyOut(): void {
    const batch = this.beginBatch();
    for (const ctx of this.order) {
      if (ctx.state !== COPY_OUT) continue;
      const plan = ctx.plan;
      if (ctx.queue === null || ctx.queue.dead || plan === null || plan.kind !== 'read') {
        this.finish(ctx, BlkifStatus.ERROR);
        continue;
      }
      ctx.batchStart = batch.count;
      const domid = ctx.queue.domid;
      for (const s of plan.segments) batch.add(true, domid, s.gref, s.offsetInPage, s.length, ctx.dataOffset + (s.fileOffset - plan.fileOffset));
      ctx.batchCount = plan.segments.length;
      this.batched.push(ctx);
    }
    this.runBatch(batch, this.batched, this.pool, this.readDataCopied);
  }

  private readonly readDataCopied = (ctx: RequestContext, status: number): void => {
    if (status !== GNTST_OKAY) this.finish(ctx, BlkifStatus.ERROR, `read data: grant copy status ${status}`);
    else this.finish(ctx, BlkifStatus.OKAY);
  };

  // --- 4. responses ---------------------------------------------------------------------------

  private finish(ctx: RequestContext, status: number, reason?: string, loud = false): void {
    ctx.status = status;
    ctx.state = DONE;
    if (ctx.dataOffset >= 0) {
      this.pages.free(ctx.dataOffset, ctx.dataPages);
      this.opts.budget?.give(ctx.dataPages * PAGE_SIZE);
      ctx.dataOffset = -1;
      ctx.buf = null;
    }
    if (ctx.keepSlot !== null) {
      this.dur.unreserve(ctx.keepSlot);
      ctx.keepSlot = null;
      ctx.buf = null;
    }
    if (status !== BlkifStatus.OKAY) {
      this.st.errors++;
      const msg = `request id ${ctx.id} op ${ctx.operation}: ${reason ?? 'failed'}`;
      if (loud) this.warn(msg);
      else log(msg);
    }
    // In a pump, publish() comes next; but requests waiting for memory may fit now (allocate()
    // has run), and after issue() one waiting for this one (a flush, a barrier) may start.
    if (!this.pumping || this.memWait.length > 0 || (this.issued && this.waitingForOrder())) this.schedule();
  }

  private waitingForOrder(): boolean {
    for (let i = 0; i < this.order.length; i++) if (this.order[i].state === WAIT_ORDER) return true;
    return false;
  }

  private publish(): void {
    this.publishNow = 0;
    const free = this.freeList.length;
    for (let k = 0; k < this.queues.length; k++) this.publishQueue(this.queues[k]);
    // Slots came free: requests another ring could not get a slot for are taken next (its own
    // publishQueue only looks at itself, and finish() in a pump schedules nothing).
    if (this.freeList.length > free && !this.stopping && !this.scheduled) {
      for (const q of this.queues) {
        if (!q.dead && q.ring.unconsumed() > 0) {
          this.schedule();
          break;
        }
      }
    }
    // Contexts of dead queues: release in order once done, never touching their ring.
    for (let i = 0; i < this.order.length; i++) {
      const ctx = this.order[i];
      if (ctx.state === DONE && (ctx.queue === null || ctx.queue.dead) && this.isHeadOf(ctx)) {
        ctx.queue?.shift();
        this.release(ctx);
        i = -1; // the next one may now be a head
      }
    }
  }

  private isHeadOf(ctx: RequestContext): boolean {
    return ctx.queue === null || ctx.queue.peek() === ctx;
  }

  private publishQueue(q: EngineQueue): void {
    if (q.dead) return;
    const ring: BackRing = q.ring;
    let published = 0;
    for (let head = q.peek(); head !== null && head.state === DONE; head = q.peek()) {
      ring.putResponse(head.id, head.operation, head.status);
      q.shift();
      this.release(head);
      published++;
    }
    if (published === 0) return;
    if (ring.pushResponses()) q.hooks.notify();
    // As blkback/QEMU after pushing: if nothing of this ring is in flight, make sure we hear
    // about the next request; if requests are waiting, come back for them.
    if (this.stopping) return;
    if (ring.rspProdPvt === ring.reqCons) {
      if (ring.finalCheckForRequests()) this.schedule();
    } else if (ring.unconsumed() > 0 && this.freeList.length > 0) this.schedule();
  }

  /** Answered (or dropped with its ring): the latency is counted here, once per pump's clock. */
  private release(ctx: RequestContext): void {
    if (this.publishNow === 0) this.publishNow = performance.now();
    recordLatency(this.st, this.publishNow - ctx.startedAt);
    const i = this.order.indexOf(ctx);
    if (i === 0) this.order.shift(); // the usual case (answered in ring order): no array made
    else if (i > 0) this.order.splice(i, 1);
    ctx.reset();
    this.freeList.push(ctx);
    if (this.order.length === 0) this.poolMemory.idle();
  }

  private breakQueue(q: EngineQueue, reason: string): void {
    if (q.dead) return;
    this.warn(`frontend broke ring ${q.id}: ${reason}; disconnecting it`);
    this.removeQueue(q);
    q.hooks.broken(reason);
  }

  private count(op: number, inner: number): void {
    const r = this.st.requests;
    if (op === BlkifOp.INDIRECT) r.indirect++;
    switch (inner) {
      case BlkifOp.READ: r.read++; break;
      case BlkifOp.WRITE: r.write++; break;
      case BlkifOp.FLUSH_DISKCACHE: r.flush++; break;
      case BlkifOp.WRITE_BARRIER: r.barrier++; break;
      case BlkifOp.DISCARD: r.discard++; break;
      default: if (op !== BlkifOp.INDIRECT) r.unknown++;
    }
    const n = this.order.length;
    if (n > this.st.peakInFlight) this.st.peakInFlight = n;
  }

  private warn(msg: string): void {
    log(msg);
    this.opts.warn?.(msg);
  }
}

/** The first non-okay status among ctx's segments of the batch, or okay. */
function badSegment(batch: GrantCopyBatch, ctx: RequestContext): number {
  const status = batch.status;
  const end = ctx.batchStart + ctx.batchCount;
  for (let i = ctx.batchStart; i < end; i++) if (status[i] !== GNTST_OKAY) return status[i];
  return GNTST_OKAY;
}

/** A view of pool[off, off + bytes), the context's last one when it is the same range. */
function poolView(ctx: RequestContext, pool: Uint8Array, off: number, bytes: number): Uint8Array {
  const v = ctx.poolView;
  if (v !== null && v.buffer === pool.buffer && v.byteOffset === pool.byteOffset + off && v.length === bytes) return v;
  return (ctx.poolView = pool.subarray(off, off + bytes));
}

/** Removes a's first n elements in place (splice would make an array of them every pump). */
function dropFirst<T>(a: T[], n: number): void {
  if (n <= 0) return;
  if (n === 1) {
    a.shift();
    return;
  }
  a.copyWithin(0, n);
  a.length -= n;
}
