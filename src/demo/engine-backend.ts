// A minimal blkback for the demo and the sim tests: the blkif handshake in XenStore (features
// and InitWait at start; rings, event channels and Connected once the frontend is Initialised
// and hotplug-status=connected; Closed on Closing) driving the request engine. The worker's
// per-device state machine (src/worker/device/) is the full version of this; this one exists
// so the demo and the simulated frontend can run against the engine without the worker.
import createDebug from 'debug';
import { BackRing } from '../blkif/ring';
import { abiForProtocol } from '../blkif/abi';
import { DEFAULT_MAX_INDIRECT_SEGMENTS, MAX_RING_PAGE_ORDER, SECTOR_SIZE, VDISK_READONLY } from '../blkif/constants';
import type { BlockFile } from '../engine/block-file';
import { Engine, type EngineOptions } from '../engine/engine';
import type { EngineQueue } from '../engine/queue';
import type { RingMapping } from '../xen/grant-table';
import type { Platform } from '../xen/platform';
import { XenbusState, parseState } from '../xen/xenbus-state';
import type { Watch, XenStore } from '../xen/xenstore';

const log = createDebug('afsfile:demo:backend');

export interface EngineBackendOptions {
  readonly maxIndirectSegments?: number;
  readonly maxRingPageOrder?: number;
  readonly maxQueues?: number;
  readonly engine?: EngineOptions;
}

interface Ring {
  readonly port: number;
  readonly mapping: RingMapping;
  readonly queue: EngineQueue;
}

export class EngineBackend {
  engine: Engine | undefined;
  private rings: Ring[] = [];
  private watches: Watch[] = [];
  private frontend = '';
  private domid = 0;
  private busy: Promise<void> = Promise.resolve();
  private state: number = XenbusState.Initialising;
  /** Times the frontend connected (reconnects count again). */
  connects = 0;

  constructor(
    private readonly xs: XenStore,
    private readonly platform: Platform,
    readonly backend: string,
    private readonly file: BlockFile,
    private readonly opts: EngineBackendOptions = {},
  ) {}

  async start(): Promise<void> {
    const b = this.backend;
    this.frontend = await this.xs.read(`${b}/frontend`);
    this.domid = Number(await this.xs.read(`${b}/frontend-id`));
    // As blkback's probe: features, then InitWait.
    await this.xs.write(`${b}/feature-max-indirect-segments`, String(this.opts.maxIndirectSegments ?? DEFAULT_MAX_INDIRECT_SEGMENTS));
    await this.xs.write(`${b}/multi-queue-max-queues`, String(this.opts.maxQueues ?? 4));
    await this.xs.write(`${b}/max-ring-page-order`, String(this.opts.maxRingPageOrder ?? MAX_RING_PAGE_ORDER));
    await this.setState(XenbusState.InitWait);
    this.platform.evtchn.onPending((ports, overflow) => {
      if (!this.engine) return;
      this.engine.kick();
      for (const r of this.rings) if (overflow || ports.includes(r.port)) this.platform.evtchn.unmask(r.port);
    });
    const react = () => {
      this.busy = this.busy.then(() => this.step()).catch((err) => log('%s: %O', b, err));
    };
    this.watches.push(await this.xs.watch(`${this.frontend}/state`, react));
    this.watches.push(await this.xs.watch(`${b}/hotplug-status`, react));
    this.watches.push(await this.xs.watch(`${b}/online`, react));
  }

  private async setState(s: number): Promise<void> {
    this.state = s;
    await this.xs.write(`${this.backend}/state`, String(s));
  }

  private async step(): Promise<void> {
    const fe = parseState(await this.xs.tryRead(`${this.frontend}/state`));
    const online = (await this.xs.tryRead(`${this.backend}/online`)) !== '0';
    const backState = parseState(await this.xs.tryRead(`${this.backend}/state`));
    if (!online && backState === XenbusState.Closing && this.state !== XenbusState.Closed) return this.disconnect();
    if (fe === XenbusState.Closing && this.state === XenbusState.Connected) {
      await this.disconnect(XenbusState.Closing);
      return;
    }
    if (fe === XenbusState.Closed || fe === XenbusState.Unknown) {
      if (this.state !== XenbusState.Closed) await this.disconnect();
      return;
    }
    if (fe === XenbusState.Initialising && this.state === XenbusState.Closed && online) return this.setState(XenbusState.InitWait);
    if ((fe === XenbusState.Initialised || fe === XenbusState.Connected) && this.state === XenbusState.InitWait) {
      if ((await this.xs.tryRead(`${this.backend}/hotplug-status`)) !== 'connected') return;
      await this.connect();
    }
  }

  private async connect(): Promise<void> {
    const f = this.frontend;
    const protocol = await this.xs.tryRead(`${f}/protocol`);
    const abi = abiForProtocol(protocol);
    const nq = Number((await this.xs.tryRead(`${f}/multi-queue-num-queues`)) ?? 1);
    const order = Number((await this.xs.tryRead(`${f}/ring-page-order`)) ?? 0);
    const readOnly = this.file.readOnly;
    const maxInd = this.opts.maxIndirectSegments ?? DEFAULT_MAX_INDIRECT_SEGMENTS;
    this.engine ??= new Engine(this.file, this.platform.grants, {
      sectors: BigInt(this.file.size / SECTOR_SIZE), readOnly, maxIndirectSegments: maxInd, discard: this.file.canDiscard, flush: true, barrier: true,
    }, this.opts.engine);
    this.engine.resume();
    for (let q = 0; q < nq; q++) {
      const dir = nq > 1 ? `${f}/queue-${q}` : f;
      const refs = order === 0 ? [Number(await this.xs.read(`${dir}/ring-ref`))] : await Promise.all(Array.from({ length: 1 << order }, async (_, i) => Number(await this.xs.read(`${dir}/ring-ref${i}`))));
      const mapping = await this.platform.grants.mapRing(this.domid, refs);
      const port = await this.platform.evtchn.bindInterdomain(this.domid, Number(await this.xs.read(`${dir}/event-channel`)));
      const ring = new BackRing(mapping.buffer, abi);
      const queue = this.engine.addQueue(ring, this.domid, {
        notify: () => this.platform.evtchn.notify(port),
        broken: (reason) => log('%s queue %d broken: %s', this.backend, q, reason),
      });
      this.rings.push({ port, mapping, queue });
    }
    const b = this.backend;
    await this.xs.transaction(async (t) => {
      await t.write(`${b}/feature-flush-cache`, '1');
      await t.write(`${b}/feature-barrier`, '1');
      if (this.file.canDiscard && (await t.tryRead(`${b}/discard-enable`)) !== '0') {
        await t.write(`${b}/feature-discard`, '1');
        await t.write(`${b}/discard-granularity`, '4096');
        await t.write(`${b}/discard-alignment`, '0');
      }
      await t.write(`${b}/sectors`, String(this.file.size / SECTOR_SIZE));
      await t.write(`${b}/sector-size`, String(SECTOR_SIZE));
      await t.write(`${b}/info`, String(readOnly ? VDISK_READONLY : 0));
      await t.write(`${b}/state`, String(XenbusState.Connected));
    });
    this.state = XenbusState.Connected;
    this.connects++;
    this.engine.kick();
  }

  private async disconnect(final: number = XenbusState.Closed): Promise<void> {
    if (this.engine) {
      await this.engine.drain();
      await this.engine.flush(8000).catch((err) => log('fsync at close failed: %O', err));
      for (const r of this.rings) {
        this.engine.removeQueue(r.queue);
        this.platform.evtchn.unbind(r.port);
        r.mapping.unmap();
      }
    }
    this.rings = [];
    await this.setState(final);
  }

  /** Stops serving (no XenStore change): the demo's end. */
  async stop(): Promise<void> {
    for (const w of this.watches) await w.close();
    this.watches = [];
    await this.busy;
    if (this.engine) {
      await this.engine.drain();
      await this.engine.flush(8000).catch(() => undefined);
      this.engine.close();
    }
  }
}
