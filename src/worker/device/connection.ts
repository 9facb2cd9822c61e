// The live part of a connected device: mapped rings and bound event channels, one per queue,
// each registered with the engine. Built all-or-nothing; torn down idempotently.
import createDebug from 'debug';
import { BackRing } from '../../blkif/ring';
import type { Engine } from '../../engine/engine';
import type { EngineQueue } from '../../engine/queue';
import type { RingMapping } from '../../xen/grant-table';
import type { Platform } from '../../xen/platform';
import { FrontendError, type FrontendParams } from './frontend';
import { portDispatcher } from './ports';

const log = createDebug('afsfile:ring');

interface LiveQueue {
  mapping: RingMapping;
  port: number;
  queue: EngineQueue | undefined;
  /** Wakeups in a row that found no request (reset by one that found some). */
  spurious: number;
  /** The ring's req_cons at the previous wakeup: requests consumed since (by the engine's own
   * final check, before their event arrived) make the next wakeup count as work. */
  consAtWakeup: number;
  unmaskTimer: NodeJS.Timeout | undefined;
}

/**
 * After this many spurious wakeups in a row, the port stays masked for a while before it is
 * unmasked: 4 ms doubling up to 1 s. Linux does the same for lateeoi event channels
 * (drivers/xen/events/events_base.c, xen_irq_lateeoi_locked: a delay of 1 << (count - 2)
 * jiffies, at most HZ), so a guest notifying in a loop costs dom0 almost nothing (XSA-332).
 */
const SPURIOUS_FREE = 1;
const SPURIOUS_FIRST_DELAY_MS = 4;
const SPURIOUS_MAX_DELAY_MS = 1000;

export class Connection {
  private readonly live: LiveQueue[] = [];
  private closed = false;
  /** Event channel wakeups, and those that found no new request (a storm shows here). */
  events = 0;
  spuriousEvents = 0;
  /** Times a port was left masked for a back-off delay. */
  backoffs = 0;

  private constructor(private readonly platform: Platform, private readonly engine: Engine) {}

  /**
   * Maps every ring, attaches at the shared rsp_prod (so unanswered requests of a previous
   * worker are replayed), binds every event channel and starts serving. On any failure,
   * undoes what was done and throws a FrontendError.
   */
  static async open(
    platform: Platform, engine: Engine, domid: number, params: FrontendParams, onBroken: (reason: string) => void,
    persistent = false,
  ): Promise<Connection> {
    const c = new Connection(platform, engine);
    const rings: BackRing[] = [];
    try {
      for (let i = 0; i < params.queues.length; i++) {
        const q = params.queues[i];
        let mapping: RingMapping;
        try {
          mapping = await platform.grants.mapRing(domid, q.grefs);
        } catch (err) {
          throw new FrontendError(`cannot map ring ${i} (grant refs ${q.grefs.join(',')}): ${(err as Error).message}`);
        }
        const entry: LiveQueue = {
          mapping, port: -1, queue: undefined, spurious: 0, consAtWakeup: 0, unmaskTimer: undefined,
        };
        c.live.push(entry);
        const ring = new BackRing(mapping.buffer, params.abi);
        if (ring.broken()) throw new FrontendError(`ring ${i}: req_prod ${ring.reqProd} is more than ${ring.size} ahead of rsp_prod ${ring.rspProd}`);
        rings.push(ring);
        try {
          entry.port = await platform.evtchn.bindInterdomain(domid, q.eventChannel);
        } catch (err) {
          throw new FrontendError(`cannot bind event channel ${q.eventChannel} of domain ${domid}: ${(err as Error).message}`);
        }
      }
    } catch (err) {
      c.close();
      throw err;
    }
    const dispatcher = portDispatcher(platform.evtchn);
    for (let i = 0; i < c.live.length; i++) {
      const entry = c.live[i];
      const port = entry.port;
      entry.queue = engine.addQueue(rings[i], domid, {
        notify: () => {
          try {
            platform.evtchn.notify(port);
          } catch (err) {
            log('notify port %d: %s', port, (err as Error).message);
          }
        },
        broken: onBroken,
      }, persistent);
      const ring = rings[i];
      const unmaskLater = () => c.unmask(entry); // one closure per queue, not per event
      entry.consAtWakeup = ring.reqCons;
      dispatcher.register(port, () => {
        c.events++;
        // The port stays masked (as /dev/xen/evtchn leaves it) until the work is done: unmasked
        // after the engine's next pump has taken the requests, not before it.
        // Work is requests waiting, or requests the engine took since the last wakeup: after a
        // response the engine looks at the ring again and often takes the next request before
        // its event arrives. Counting that event as spurious backed a busy queue-depth-1 guest
        // off to a request a second. Linux's xen-blkback judges the same way: an EOI is
        // spurious only when no request was consumed since the previous one
        // (drivers/block/xen-blkback/blkback.c, eoi_flags in xen_blkif_schedule).
        const took = ring.reqCons !== entry.consAtWakeup;
        entry.consAtWakeup = ring.reqCons;
        if (ring.unconsumed() !== 0 || took) {
          entry.spurious = 0;
          engine.kick();
          setImmediate(unmaskLater);
          return;
        }
        c.spuriousEvents++;
        entry.spurious++;
        if (entry.spurious <= SPURIOUS_FREE) {
          engine.kick(); // cheap, and covers a request pushed just after the look
          setImmediate(unmaskLater);
          return;
        }
        const n = entry.spurious - SPURIOUS_FREE - 1;
        const delay = Math.min(SPURIOUS_FIRST_DELAY_MS * 2 ** n, SPURIOUS_MAX_DELAY_MS);
        c.backoffs++;
        entry.unmaskTimer = setTimeout(() => {
          entry.unmaskTimer = undefined;
          // Requests may have come while masked (their event is latched): look again.
          engine.kick();
          c.unmask(entry);
        }, delay);
      });
      // An event that arrived before the handler was registered left the port masked.
      platform.evtchn.unmask(port);
      log('queue %d: ring of %d entries (%s), local port %d, %d unanswered at attach', i, rings[i].size, params.abi.name, port, rings[i].unconsumed());
    }
    return c;
  }

  get queues(): number {
    return this.live.length;
  }

  private unmask(entry: LiveQueue): void {
    if (this.closed || entry.port < 0) return;
    try {
      this.platform.evtchn.unmask(entry.port);
    } catch (err) {
      log('unmask %d: %s', entry.port, (err as Error).message);
    }
  }

  /** Stops ring access, unbinds and unmaps. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const dispatcher = portDispatcher(this.platform.evtchn);
    for (const e of this.live) {
      clearTimeout(e.unmaskTimer);
      if (e.queue) this.engine.removeQueue(e.queue);
      if (e.port >= 0) {
        dispatcher.unregister(e.port);
        try {
          this.platform.evtchn.unbind(e.port);
        } catch (err) {
          log('unbind %d: %s', e.port, (err as Error).message);
        }
      }
      try {
        e.mapping.unmap();
      } catch (err) {
        log('unmap: %s', (err as Error).message);
      }
    }
    this.live.length = 0;
  }
}
