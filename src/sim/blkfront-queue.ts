// One ring of the simulated blkfront (Linux xen-blkfront's struct blkfront_ring_info): the
// shared ring on consecutive guest pages, its grants and event-channel port, and the requests
// in flight on it, keyed by the id echoed in responses.
import createDebug from 'debug';
import type { Abi, BlkifResponse } from '../blkif/abi';
import { FrontRing } from '../blkif/ring';
import { BlkifOp, BlkifStatus } from '../blkif/constants';
import type { BlkifRequest } from '../blkif/request';
import type { SimGuest } from './guest';

const log = createDebug('afsfile:sim:blkfront');

export interface InFlight {
  /** Called with the response; the queue has already forgotten the request. */
  complete(rsp: BlkifResponse): void;
}

export class BlkfrontQueue {
  readonly ring: FrontRing;
  readonly grefs: number[];
  readonly port: number;
  private readonly firstPage: number;
  private readonly pending = new Map<bigint, InFlight>();
  /** The operation each response must carry: an INDIRECT request is answered with its
   * indirect_op, as Linux blkfront's blkif_interrupt checks ("wrong operation"). */
  private readonly expectedOp = new Map<bigint, number>();
  /** Responses whose operation did not match (Linux blkfront disables the disk on one). */
  protocolErrors = 0;
  /** Responses whose id matches nothing in flight (raw requests, a confused backend). */
  readonly unmatched: BlkifResponse[] = [];
  notifies = 0;
  private closed = false;

  constructor(private readonly guest: SimGuest, readonly index: number, readonly order: number, abi: Abi, private readonly onResponses: () => void) {
    const pages = 1 << order;
    this.firstPage = guest.allocPages(pages);
    for (let i = 0; i < pages; i++) guest.page(this.firstPage + i).fill(0);
    // A ring view over the guest's own mapping of its pages (SHARED_RING_INIT).
    const bytes = guest.memory.bytes;
    const start = guest.page(this.firstPage).byteOffset;
    this.ring = new FrontRing(bytes.subarray(start, start + pages * 4096), abi, { init: true });
    this.grefs = Array.from({ length: pages }, (_, i) => guest.grant(this.firstPage + i, false));
    this.port = guest.allocUnboundPort(0);
    guest.onEvent(this.port, () => this.drain());
  }

  get inFlight(): number {
    return this.pending.size;
  }

  canSubmit(): boolean {
    return !this.closed && this.ring.freeRequests() > 0;
  }

  /** Puts the request on the ring and notifies the backend when ring.h says it is due. */
  submit(req: BlkifRequest, done: InFlight): void {
    this.pending.set(req.id, done);
    this.expectedOp.set(
      req.id,
      req.kind === 'rw' && req.operation === BlkifOp.INDIRECT ? req.innerOperation : req.operation,
    );
    this.ring.putRequest(req);
    if (this.ring.pushRequests()) this.kick();
  }

  kick(): void {
    this.notifies++;
    this.guest.notify(this.port);
  }

  /** blkif_interrupt: consume every published response, then re-arm rsp_event and re-check. */
  drain(): void {
    if (this.closed) return;
    do {
      while (this.ring.unconsumedResponses() > 0) {
        const rsp = this.ring.takeResponse();
        const p = this.pending.get(rsp.id);
        if (!p) {
          log('queue %d: response for unknown id %s (op %d, status %d)', this.index, rsp.id, rsp.operation, rsp.status);
          this.unmatched.push(rsp);
          continue;
        }
        this.pending.delete(rsp.id);
        const expected = this.expectedOp.get(rsp.id);
        this.expectedOp.delete(rsp.id);
        if (expected !== undefined && rsp.operation !== expected) {
          this.protocolErrors++;
          log('queue %d: response has wrong operation (%d instead of %d)', this.index, rsp.operation, expected);
          p.complete({ ...rsp, status: BlkifStatus.ERROR });
          continue;
        }
        p.complete(rsp);
      }
    } while (this.ring.finalCheckForResponses());
    this.onResponses();
  }

  /** The requests still in flight (blkif_recover re-issues them on a new ring). */
  takePending(): Array<[bigint, InFlight]> {
    const all = [...this.pending];
    this.pending.clear();
    this.expectedOp.clear();
    return all;
  }

  /** blkif_free: ends the ring grants, closes the port, frees the pages. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const g of this.grefs) this.guest.endGrant(g);
    this.guest.closePort(this.port);
    this.guest.freePages(this.firstPage, 1 << this.order);
  }
}
