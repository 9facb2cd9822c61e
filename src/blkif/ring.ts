// The shared ring (xen.git xen/include/public/io/ring.h, DEFINE_RING_TYPES): a 64-byte header
// of u32 indexes followed by 2^k entries, over `4096 << order` mapped bytes. Indexes are
// free-running u32 and wrap at 2^32; every comparison is done modulo 2^32.
//
// Indexes are read and written with Atomics (sequentially consistent), which is at least as
// strong as the xen_rmb/xen_wmb/xen_mb fences ring.h asks for. The peer can change anything at
// any time: nothing read from the header is trusted beyond the checks below.
import type { Abi, BlkifResponse } from './abi';
import { PAGE_SIZE, RING_HEADER_SIZE } from './constants';
import type { BlkifRequest } from './request';

// Header words (u32 index into the header).
const REQ_PROD = 0;
const REQ_EVENT = 1;
const RSP_PROD = 2;
const RSP_EVENT = 3;

/** __RING_SIZE: entries that fit, rounded down to a power of two (0 when none fit). */
export function ringSize(bytes: number, stride: number): number {
  const n = Math.floor((bytes - RING_HEADER_SIZE) / stride);
  if (n < 1) return 0;
  let p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

/** Bytes of a ring of 2^order pages. */
export function ringBytes(order: number): number {
  return PAGE_SIZE << order;
}

function u32(x: number): number {
  return x >>> 0;
}

abstract class RingBase {
  readonly size: number;
  readonly bytes: Uint8Array;
  protected readonly header: Uint32Array;
  protected readonly mask: number;

  constructor(memory: ArrayBuffer | Uint8Array, readonly abi: Abi) {
    this.bytes = memory instanceof Uint8Array ? memory : new Uint8Array(memory);
    if (this.bytes.byteOffset % 4 !== 0) throw new RangeError('ring memory must be 4-byte aligned');
    this.header = new Uint32Array(this.bytes.buffer, this.bytes.byteOffset, RING_HEADER_SIZE / 4);
    this.size = ringSize(this.bytes.byteLength, abi.stride);
    if (this.size === 0) throw new RangeError(`ring of ${this.bytes.byteLength} bytes holds no ${abi.name} entry`);
    this.mask = this.size - 1;
  }

  /** Byte offset of the entry for free-running index idx. */
  slotOffset(idx: number): number {
    return RING_HEADER_SIZE + (idx & this.mask) * this.abi.stride;
  }

  get reqProd(): number {
    return Atomics.load(this.header, REQ_PROD);
  }
  get reqEvent(): number {
    return Atomics.load(this.header, REQ_EVENT);
  }
  get rspProd(): number {
    return Atomics.load(this.header, RSP_PROD);
  }
  get rspEvent(): number {
    return Atomics.load(this.header, RSP_EVENT);
  }
}

/** The backend's view: consumes requests, produces responses. */
export class BackRing extends RingBase {
  /** Next request to take (private, as blkif_back_ring.req_cons). */
  reqCons: number;
  /** Next response slot to fill (private, as rsp_prod_pvt). */
  rspProdPvt: number;

  /**
   * BACK_RING_ATTACH at the shared rsp_prod, as Linux blkback: after a worker restart the
   * slots [rsp_prod, req_prod) still hold the unanswered requests and are consumed again.
   */
  constructor(memory: ArrayBuffer | Uint8Array, abi: Abi) {
    super(memory, abi);
    const start = this.rspProd;
    this.reqCons = start;
    this.rspProdPvt = start;
  }

  /**
   * True when the frontend broke the ring: req_prod more than a ring ahead of what we answered
   * (RING_REQUEST_PROD_OVERFLOW), which includes req_prod moving backwards. Disconnect it.
   */
  broken(): boolean {
    return u32(this.reqProd - this.rspProdPvt) > this.size;
  }

  /** XEN_RING_NR_UNCONSUMED_REQUESTS: requests we may take now (0 when the ring is broken). */
  unconsumed(): number {
    const prod = this.reqProd;
    if (u32(prod - this.rspProdPvt) > this.size) return 0;
    const produced = u32(prod - this.reqCons);
    const room = this.size - u32(this.reqCons - this.rspProdPvt);
    return Math.min(produced, room);
  }

  /** Requests taken but not yet answered. */
  inFlight(): number {
    return u32(this.reqCons - this.rspProdPvt);
  }

  /**
   * Copies the next request out of the ring (the caller checked unconsumed() > 0) and returns
   * it; its free-running index is reqCons - 1 after the call (see lastIndex).
   */
  takeRequest(): BlkifRequest {
    const req = this.abi.readRequest(this.bytes, this.slotOffset(this.reqCons));
    this.reqCons = u32(this.reqCons + 1);
    return req;
  }

  /**
   * Writes the response for the oldest unanswered request, into that request's own slot
   * (responses are produced in ring order). Only id, operation and status are written.
   */
  putResponse(id: bigint, operation: number, status: number): void {
    if (this.rspProdPvt === this.reqCons) throw new RangeError('putResponse with no request in flight');
    this.abi.writeResponse(this.bytes, this.slotOffset(this.rspProdPvt), id, operation, status);
    this.rspProdPvt = u32(this.rspProdPvt + 1);
  }

  /**
   * RING_PUSH_RESPONSES_AND_CHECK_NOTIFY: publishes rsp_prod; true when rsp_event lies in
   * (old, new], i.e. the frontend asked to be notified for one of the new responses.
   */
  pushResponses(): boolean {
    const old = this.rspProd;
    const next = this.rspProdPvt;
    Atomics.store(this.header, RSP_PROD, next);
    return u32(next - this.rspEvent) < u32(next - old);
  }

  /**
   * RING_FINAL_CHECK_FOR_REQUESTS: true when there is more to consume. Otherwise asks for a
   * notification on the very next request (req_event = req_cons + 1) and checks again, which
   * closes the race with a frontend producing concurrently.
   */
  finalCheckForRequests(): boolean {
    if (this.unconsumed() > 0) return true;
    Atomics.store(this.header, REQ_EVENT, u32(this.reqCons + 1));
    return this.unconsumed() > 0;
  }
}

export interface FrontRingOptions {
  /** SHARED_RING_INIT first (a new ring); false to attach to a live one. */
  init: boolean;
}

/** The frontend's view (for the simulated blkfront): produces requests, consumes responses. */
export class FrontRing extends RingBase {
  reqProdPvt: number;
  rspCons: number;

  constructor(memory: ArrayBuffer | Uint8Array, abi: Abi, opts: FrontRingOptions = { init: true }) {
    super(memory, abi);
    if (opts.init) {
      // SHARED_RING_INIT: indexes 0, events 1, pvt and pad zeroed.
      this.bytes.fill(0, 0, RING_HEADER_SIZE);
      Atomics.store(this.header, REQ_PROD, 0);
      Atomics.store(this.header, RSP_PROD, 0);
      Atomics.store(this.header, REQ_EVENT, 1);
      Atomics.store(this.header, RSP_EVENT, 1);
    }
    this.reqProdPvt = this.reqProd;
    this.rspCons = this.rspProd;
  }

  /** RING_FREE_REQUESTS. */
  freeRequests(): number {
    return this.size - u32(this.reqProdPvt - this.rspCons);
  }

  /** Writes a request into the next free slot; returns its free-running index. */
  putRequest(req: BlkifRequest): number {
    if (this.freeRequests() <= 0) throw new RangeError('ring full');
    const idx = this.reqProdPvt;
    this.abi.writeRequest(this.bytes, this.slotOffset(idx), req);
    this.reqProdPvt = u32(idx + 1);
    return idx;
  }

  /** Raw access for tests and hostile frontends: the bytes of the slot for index idx. */
  slotBytes(idx: number): Uint8Array {
    const at = this.slotOffset(idx);
    return this.bytes.subarray(at, at + this.abi.stride);
  }

  /** Overwrites req_prod directly (hostile-frontend tests). */
  setReqProd(value: number): void {
    Atomics.store(this.header, REQ_PROD, u32(value));
  }

  /** RING_PUSH_REQUESTS_AND_CHECK_NOTIFY: true when req_event lies in (old, new]. */
  pushRequests(): boolean {
    const old = this.reqProd;
    const next = this.reqProdPvt;
    Atomics.store(this.header, REQ_PROD, next);
    return u32(next - this.reqEvent) < u32(next - old);
  }

  /** Responses published and not yet consumed. */
  unconsumedResponses(): number {
    return u32(this.rspProd - this.rspCons);
  }

  takeResponse(): BlkifResponse {
    const rsp = this.abi.readResponse(this.bytes, this.slotOffset(this.rspCons));
    this.rspCons = u32(this.rspCons + 1);
    return rsp;
  }

  /** RING_FINAL_CHECK_FOR_RESPONSES: rsp_event = rsp_cons + 1, then check again. */
  finalCheckForResponses(): boolean {
    if (this.unconsumedResponses() > 0) return true;
    Atomics.store(this.header, RSP_EVENT, u32(this.rspCons + 1));
    return this.unconsumedResponses() > 0;
  }
}
