// One ring of a device (a device has 1..multi-queue-max-queues of them), as the engine sees it.
import type { BackRing } from '../blkif/ring';
import type { RequestContext } from './context';

export interface QueueHooks {
  /** Send an event to the frontend (pushResponses said one is due). */
  notify(): void;
  /** The frontend broke the ring (req_prod too far ahead): disconnect it. */
  broken(reason: string): void;
}

export class EngineQueue {
  /** Taken, unanswered requests in ring order (a FIFO of at most the request budget). */
  readonly fifo: Array<RequestContext | null>;
  head = 0;
  count = 0;
  /** No more ring access: broken, removed, or the device detached after a deadline. */
  dead = false;
  /** Ring index up to which requests waiting for a slot were counted (stats.stalls.slot). */
  stalledUpTo: number | null = null;

  constructor(readonly id: number, readonly ring: BackRing, readonly domid: number, readonly hooks: QueueHooks, capacity: number) {
    this.fifo = new Array<RequestContext | null>(capacity).fill(null);
  }

  push(ctx: RequestContext): void {
    this.fifo[(this.head + this.count) % this.fifo.length] = ctx;
    this.count++;
  }

  peek(): RequestContext | null {
    return this.count > 0 ? this.fifo[this.head] : null;
  }

  shift(): void {
    this.fifo[this.head] = null;
    this.head = (this.head + 1) % this.fifo.length;
    this.count--;
  }
}
