// One in-flight request of a device. A fixed number of these exist per device (the request
// budget); each is reused, with its I/O callback bound once, so the hot path allocates no
// closure per request.
import type { Plan } from '../blkif/validate';
import type { RwRequest } from '../blkif/request';
import type { IoCallback } from './block-file';
import type { ArenaSlot } from './keep-arena';
import type { EngineQueue } from './queue';

/** Life of a context: FREE → (INDIRECT →) WAIT_MEM → WAIT_ORDER → IO → (COPY_OUT →) DONE → FREE. */
export const FREE = 0;
export const INDIRECT = 1;
export const WAIT_MEM = 2;
export const WAIT_ORDER = 3;
export const IO = 4;
export const COPY_OUT = 5;
export const DONE = 6;

/** I/O steps; a request runs a fixed sequence of them. */
export const STEP_READ = 0;
export const STEP_WRITE = 1;
export const STEP_FSYNC = 2;
/** Punch a hole (fallocate). */
export const STEP_DISCARD = 3;
export const STEPS_READ: readonly number[] = [STEP_READ];
export const STEPS_WRITE: readonly number[] = [STEP_WRITE];
/** FLUSH_DISKCACHE with data: flush first, then write (QEMU's presync). */
export const STEPS_FLUSH_WRITE: readonly number[] = [STEP_FSYNC, STEP_WRITE];
/** WRITE_BARRIER with data: earlier writes are durable before it, and it before later ones. */
export const STEPS_BARRIER_WRITE: readonly number[] = [STEP_FSYNC, STEP_WRITE, STEP_FSYNC];
export const STEPS_FSYNC: readonly number[] = [STEP_FSYNC];
export const STEPS_DISCARD: readonly number[] = [STEP_DISCARD];
export const STEPS_NONE: readonly number[] = [];

export class RequestContext {
  state = FREE;
  queue: EngineQueue | null = null;
  id = 0n;
  operation = 0;
  /** INDIRECT header, kept until its descriptor pages are copied and decoded. */
  indirectReq: RwRequest | null = null;
  plan: Plan | null = null;
  status = 0;
  /** Where the I/O buffer lives in the pool; -1 when none. */
  dataOffset = -1;
  dataPages = 0;
  buf: Uint8Array | null = null;
  /** The last pool view made for this context (kept across reset()): at a steady queue depth
   * a slot gets the same pool pages again, and the view is reused, not made per request. */
  poolView: Uint8Array | null = null;
  /** A read straight into the guest's kept-mapped pages (persistent grants), in file order; null when none. */
  iov: Uint8Array[] | null = null;
  /** A write's data in the kept-data arena (Durability.reserve) instead of the pool; null when none. */
  keepSlot: ArenaSlot | null = null;
  steps: readonly number[] = STEPS_NONE;
  stepIdx = 0;
  /** Writes a later barrier/flush must wait for (WRITE, DISCARD, FLUSH with data, BARRIER). */
  isWrite = false;
  isBarrier = false;
  /** FLUSH/BARRIER: waits for earlier writes. */
  waitsForWrites = false;
  /** First index and count of this request's segments in the current grant-copy batch. */
  batchStart = 0;
  batchCount = 0;
  startedAt = 0;
  /** performance.now() of the first transient error of the current step; 0 when none. */
  firstErrorAt = 0;
  retryDelayMs = 0;
  /** Counted in stats.stalls.memory (a request counts once). */
  memStalled = false;
  readonly onIo: IoCallback;
  readonly retry: () => void;

  constructor(
    /** Pool offset of this context's indirect descriptor pages. */
    readonly indirectOffset: number,
    onIo: (ctx: RequestContext, err: NodeJS.ErrnoException | null) => void,
    retry: (ctx: RequestContext) => void,
  ) {
    this.onIo = (err) => onIo(this, err);
    this.retry = () => retry(this);
  }

  reset(): void {
    this.state = FREE;
    this.queue = null;
    this.indirectReq = null;
    this.plan = null;
    this.status = 0;
    this.dataOffset = -1;
    this.dataPages = 0;
    this.buf = null;
    this.iov = null;
    this.keepSlot = null;
    this.steps = STEPS_NONE;
    this.stepIdx = 0;
    this.isWrite = false;
    this.isBarrier = false;
    this.waitsForWrites = false;
    this.batchStart = 0;
    this.batchCount = 0;
    this.firstErrorAt = 0;
    this.retryDelayMs = 0;
    this.memStalled = false;
  }
}
