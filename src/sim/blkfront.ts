// A simulated frontend that behaves like Linux xen-blkfront (drivers/block/xen-blkfront.c):
//
// * handshake (talk_to_blkback): waits for the backend's InitWait (or Connected, the allowed
//   shortcut); reads max-ring-page-order, multi-queue-max-queues; allocates one ring of
//   2^order pages per queue with its grants and an unbound event-channel port; writes in one
//   transaction ring-ref (order 0) or ring-page-order + ring-ref0..N-1, event-channel,
//   multi-queue-num-queues + queue-N/ when more than one queue, protocol, feature-persistent;
//   then state 3. On the backend's Connected (blkfront_connect) it reads sectors, info,
//   sector-size, feature-flush-cache, feature-barrier, feature-discard (+ granularity),
//   feature-max-indirect-segments, and goes to state 4.
// * I/O with a queue depth: read/write split into direct requests (<= 11 segments) or, when
//   the backend advertises it, indirect ones (<= min(frontend max, backend max) segments);
//   data pages granted per request (read-only for writes, as blkfront) and ended at
//   completion, or, with persistent grants (both sides' feature-persistent), pages granted
//   writable once and reused from a LIFO free list (get_free_grant / blkif_completion), the
//   data copied into and out of them, ended only at disconnect (blkif_free); flush as
//   FLUSH_DISKCACHE (or WRITE_BARRIER; nothing when neither is offered);
//   discard when feature-discard. EOPNOTSUPP disables the feature as blkfront does.
// * close and reconnect: Closing → Closed → Initialising → (backend InitWait) → handshake
//   again, re-issuing anything still in flight on the new rings (blkif_recover).
// * `raw`: arbitrary bytes in a ring slot, req_prod moves, responses read back as they are.
import { setTimeout as sleep } from 'node:timers/promises';
import createDebug from 'debug';
import { type Abi, type BlkifResponse, abiForProtocol } from '../blkif/abi';
import { writeSegment, SEGMENT_SIZE } from '../blkif/codec';
import {
  BlkifOp,
  BlkifStatus,
  MAX_INDIRECT_PAGES_PER_REQUEST,
  MAX_RING_PAGE_ORDER,
  MAX_SEGMENTS_PER_REQUEST,
  PAGE_SIZE,
  PROTOCOL_X86_64,
  SECTOR_SIZE,
  SECTORS_PER_PAGE,
  SEGMENTS_PER_INDIRECT_PAGE,
  VDISK_READONLY,
} from '../blkif/constants';
import type { BlkifRequest, Segment } from '../blkif/request';
import type { FrontRing } from '../blkif/ring';
import { XenbusState, parseState, stateName } from '../xen/xenbus-state';
import type { Watch, XenStore } from '../xen/xenstore';
import { waitForKey } from '../xen/xenstore-wait';
import { BlkfrontQueue } from './blkfront-queue';
import type { SimGuest } from './guest';

const log = createDebug('afsfile:sim:blkfront');

export interface BlkfrontOptions {
  /** The guest's own XenStore connection. */
  readonly xs: XenStore;
  readonly guest: SimGuest;
  readonly devid: number;
  /** `protocol` written to XenStore (default x86_64-abi); null writes no key (backend default). */
  readonly protocol?: string | null;
  /** The frontend's own ring-order limit (Linux module param max_ring_page_order). Default 0. */
  readonly maxRingPageOrder?: number;
  /** The frontend's own queue limit (Linux: number of CPUs). Default 1. */
  readonly maxQueues?: number;
  /** The frontend's own indirect limit (Linux module param max_indirect_segments, 32). */
  readonly maxIndirectSegments?: number;
  /** Requests kept in flight at most (the blk-mq queue depth). Default 32. */
  readonly queueDepth?: number;
  /** Re-submits a request answered BLKIF_RSP_ERROR this many times (Linux: 0). */
  readonly retries?: number;
  /** Handshake steps give up after this long. Default 10 s. */
  readonly timeoutMs?: number;
  /** Offer persistent grants (Linux module param feature_persistent, default true). */
  readonly persistent?: boolean;
}

export interface BlkfrontInfo {
  readonly sectors: number;
  readonly sectorSize: number;
  readonly info: number;
  readonly readOnly: boolean;
  readonly flush: boolean;
  readonly barrier: boolean;
  readonly discard: boolean;
  readonly discardGranularity: number;
  /** Segments per indirect request in use (0: no indirect requests). */
  readonly indirectSegments: number;
  readonly ringPageOrder: number;
  readonly queues: number;
  readonly protocol: string;
  /** Persistent grants in use (both sides offered feature-persistent). */
  readonly persistent: boolean;
}

export interface IoOptions {
  /** The ring to use (default: round robin). */
  readonly queue?: number;
  /** First sector within the first data page (0..7), as a bio that starts mid-page. */
  readonly firstSect?: number;
}

/** A request answered with an error status. */
export class BlkfrontIoError extends Error {
  constructor(readonly op: string, readonly sector: number, readonly status: number) {
    super(`blkfront ${op} at sector ${sector}: backend answered status ${status}${status === BlkifStatus.EOPNOTSUPP ? ' (EOPNOTSUPP)' : ''}`);
    this.name = 'BlkfrontIoError';
  }
}

/** One ring request in preparation or in flight. */
interface Unit {
  readonly op: number;
  readonly sector: number;
  /** rw: sectors covered, laid out from firstSect of the first page. */
  readonly nrSectors: number;
  readonly firstSect: number;
  /** write: source; read: destination (the unit's slice). */
  readonly data: Uint8Array | undefined;
  readonly queue: number | undefined;
  tries: number;
  resolve(): void;
  reject(err: Error): void;
}

interface Granted {
  readonly page: number;
  readonly gref: number;
}

export class SimBlkfront {
  readonly frontend: string;
  backend = '';
  private queues: BlkfrontQueue[] = [];
  private abi: Abi;
  private infoValue: BlkfrontInfo | undefined;
  private backendMaxIndirect = 0;
  private inFlight = 0;
  private readonly waiting: Unit[] = [];
  private readonly freePages: number[] = [];
  private rr = 0;
  private nextId = 1n;
  private stateWatch: Watch | undefined;
  private closing: Promise<void> | undefined;
  private shutDown = false;
  /** Persistent grants negotiated for this connection, and the free ones (LIFO, as rinfo->grants). */
  private persistent = false;
  private readonly freeGrants: Granted[] = [];
  /** Every persistent grant made (free or in use), ended at disconnect. */
  private allGrants = 0;
  /** Counts, for tests and the demo. */
  readonly stats = { requests: 0, indirect: 0, retries: 0, notifies: 0, reconnects: 0, persistentGrants: 0 };

  constructor(readonly opts: BlkfrontOptions) {
    this.frontend = `/local/domain/${opts.guest.domid}/device/vbd/${opts.devid}`;
    this.abi = abiForProtocol(opts.protocol ?? PROTOCOL_X86_64);
  }

  get info(): BlkfrontInfo {
    if (!this.infoValue) throw new Error('blkfront not connected');
    return this.infoValue;
  }

  get connected(): boolean {
    return this.infoValue !== undefined;
  }

  private get xs(): XenStore {
    return this.opts.xs;
  }

  private timeout(): number {
    return this.opts.timeoutMs ?? 10_000;
  }

  // ---------------------------------------------------------------- handshake

  /** The whole handshake: Initialising → (backend InitWait) → Initialised → (backend Connected) → Connected. */
  async connect(): Promise<BlkfrontInfo> {
    this.backend = await this.xs.read(`${this.frontend}/backend`);
    const s = await this.waitBackend((st) => st === XenbusState.InitWait || st === XenbusState.Connected, 'InitWait');
    log('%s: backend in %s; talking to it', this.frontend, stateName(s));
    await this.talkToBackend();
    await this.waitBackend((st) => st === XenbusState.Connected, 'Connected');
    const info = await this.readConnectInfo();
    await this.xs.write(`${this.frontend}/state`, String(XenbusState.Connected));
    this.infoValue = info;
    await this.watchForClosing();
    // blkif_recover: whatever was in flight on the old rings goes out again on the new ones.
    this.pump();
    return info;
  }

  /** Resolves with the backend state once pred holds; rejects when it goes Closed first, is removed, or on timeout. */
  private async waitBackend(pred: (s: number) => boolean, what: string): Promise<number> {
    const settles = (st: number | undefined) =>
      st !== undefined && (pred(st) || (st === XenbusState.Closed && what !== 'Closed'));
    const r = await waitForKey(this.xs, `${this.backend}/state`, (v) => settles(parseState(v)), this.timeout(), {
      dir: this.backend,
    });
    if (r.kind === 'timeout')
      throw new Error(`${this.frontend}: backend did not reach ${what} within ${this.timeout()} ms`);
    // The toolstack destroyed the device: nothing will ever answer.
    if (r.kind === 'gone') throw new Error(`${this.frontend}: backend ${this.backend} is gone`);
    const st = parseState(r.value)!;
    if (!pred(st)) throw new Error(`${this.frontend}: backend went ${stateName(st)} while waiting for ${what}`);
    return st;
  }

  private async talkToBackend(): Promise<void> {
    const num = async (key: string, dflt: number) => {
      const v = await this.xs.tryRead(`${this.backend}/${key}`);
      const n = v === undefined ? NaN : Number(v);
      return Number.isInteger(n) && n >= 0 ? n : dflt;
    };
    const backendOrder = await num('max-ring-page-order', 0);
    const order = Math.min(backendOrder, this.opts.maxRingPageOrder ?? 0, MAX_RING_PAGE_ORDER);
    const backendQueues = Math.max(1, await num('multi-queue-max-queues', 1));
    const nq = Math.min(backendQueues, this.opts.maxQueues ?? 1);
    const protocol = this.opts.protocol === null ? PROTOCOL_X86_64 : this.opts.protocol ?? PROTOCOL_X86_64;
    this.abi = abiForProtocol(protocol);
    for (const q of this.queues) q.close();
    this.queues = Array.from(
      { length: nq },
      (_, i) => new BlkfrontQueue(this.opts.guest, i, order, this.abi, () => this.pump()),
    );
    const f = this.frontend;
    await this.xs.transaction(async (t) => {
      // A previous connection's keys must not linger (blkfront rewrites what it uses).
      for (const key of await t.directory(f).catch(() => [] as string[])) {
        if (/^(ring-ref\d*|ring-page-order|event-channel|multi-queue-num-queues|queue-\d+)$/.test(key))
          await t.rm(`${f}/${key}`);
      }
      if (order > 0) await t.write(`${f}/ring-page-order`, String(order));
      if (nq > 1) await t.write(`${f}/multi-queue-num-queues`, String(nq));
      for (const q of this.queues) {
        const dir = nq > 1 ? `${f}/queue-${q.index}` : f;
        if (order === 0) await t.write(`${dir}/ring-ref`, String(q.grefs[0]));
        else for (let i = 0; i < q.grefs.length; i++) await t.write(`${dir}/ring-ref${i}`, String(q.grefs[i]));
        await t.write(`${dir}/event-channel`, String(q.port));
      }
      if (this.opts.protocol !== null) await t.write(`${f}/protocol`, protocol);
      await t.write(`${f}/feature-persistent`, this.opts.persistent === false ? '0' : '1');
    });
    await this.xs.write(`${f}/state`, String(XenbusState.Initialised));
    log('%s: %d queue(s) of order %d, protocol %s; Initialised', f, nq, order, protocol);
  }

  private async readConnectInfo(): Promise<BlkfrontInfo> {
    const b = this.backend;
    const must = async (key: string) => {
      const v = await this.xs.tryRead(`${b}/${key}`);
      if (v === undefined || !/^\d+$/.test(v))
        throw new Error(
          `${this.frontend}: reading backend fields at ${b}: ${key} missing or malformed (${JSON.stringify(v)})`,
        );
      return Number(v);
    };
    const flag = async (key: string) => (await this.xs.tryRead(`${b}/${key}`)) === '1';
    // blkfront_gather_backend_features: persistent only when both offered it.
    this.persistent = this.opts.persistent !== false && (await flag('feature-persistent'));
    const sectors = await must('sectors');
    const info = await must('info');
    const sectorSize = await must('sector-size');
    const discard = await flag('feature-discard');
    const gran = Number((await this.xs.tryRead(`${b}/discard-granularity`)) ?? SECTOR_SIZE) || SECTOR_SIZE;
    const maxInd = Number((await this.xs.tryRead(`${b}/feature-max-indirect-segments`)) ?? 0);
    this.backendMaxIndirect = Number.isInteger(maxInd) && maxInd > 0 ? maxInd : 0;
    const indirect = this.backendMaxIndirect
      ? Math.min(
          this.backendMaxIndirect,
          this.opts.maxIndirectSegments ?? 32,
          MAX_INDIRECT_PAGES_PER_REQUEST * SEGMENTS_PER_INDIRECT_PAGE,
        )
      : 0;
    return {
      sectors,
      sectorSize,
      info,
      readOnly: (info & VDISK_READONLY) !== 0,
      flush: await flag('feature-flush-cache'),
      barrier: await flag('feature-barrier'),
      discard,
      discardGranularity: gran,
      indirectSegments: indirect > MAX_SEGMENTS_PER_REQUEST ? indirect : 0,
      ringPageOrder: this.queues[0]?.order ?? 0,
      queues: this.queues.length,
      protocol: this.abi.name,
      persistent: this.persistent,
    };
  }

  /** blkback_changed(Closing): finish what is in flight, then Closed (xenbus_frontend_closed). */
  private async watchForClosing(): Promise<void> {
    await this.stateWatch?.close();
    this.stateWatch = await this.xs.watch(`${this.backend}/state`, () => {
      void this.xs.tryRead(`${this.backend}/state`).then((v) => {
        const st = parseState(v);
        if ((st === XenbusState.Closing || st === XenbusState.Closed) && this.infoValue && !this.closing) {
          log('%s: backend %s; closing', this.frontend, stateName(st));
          this.closing = this.closeFrontend().finally(() => (this.closing = undefined));
        }
      }).catch(() => undefined);
    });
  }

  private async closeFrontend(): Promise<void> {
    this.infoValue = undefined;
    await this.drainInFlight(5000);
    await this.xs.write(`${this.frontend}/state`, String(XenbusState.Closed)).catch(() => undefined);
  }

  private async drainInFlight(ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (this.queues.some((q) => q.inFlight > 0) && Date.now() < end) await sleep(5);
  }

  /**
   * Frontend-initiated reconnect (driver reload, kexec): Closing, wait for the backend to close,
   * Closed, Initialising, then the whole handshake again on new rings.
   */
  async reconnect(): Promise<BlkfrontInfo> {
    await this.stateWatch?.close();
    this.stateWatch = undefined;
    const pending = this.infoValue ? this.queues.flatMap((q) => q.takePending()) : [];
    this.infoValue = undefined;
    await this.xs.write(`${this.frontend}/state`, String(XenbusState.Closing));
    await this.waitBackend((s) => s === XenbusState.Closing || s === XenbusState.Closed, 'Closing');
    await this.xs.write(`${this.frontend}/state`, String(XenbusState.Closed));
    await this.waitBackend((s) => s === XenbusState.Closed || s === XenbusState.InitWait, 'Closed');
    for (const q of this.queues) q.close();
    this.queues = [];
    await this.xs.write(`${this.frontend}/state`, String(XenbusState.Initialising));
    // Re-issued requests return their grants below; the free ones are ended with the rings.
    this.stats.reconnects++;
    // Requests answered by nobody are re-issued (their grants were ended with the old ring).
    for (const [, p] of pending) p.complete({ id: 0n, operation: 0xff, status: RECOVER });
    this.endPersistentGrants();
    return this.connect();
  }

  /** Closes the device from the guest side (Closing → Closed) and frees everything. */
  async close(): Promise<void> {
    this.shutDown = true;
    await this.stateWatch?.close();
    this.stateWatch = undefined;
    if (this.infoValue) {
      await this.drainInFlight(5000);
      this.infoValue = undefined;
      await this.xs.write(`${this.frontend}/state`, String(XenbusState.Closing)).catch(() => undefined);
      await this.waitBackend((s) => s === XenbusState.Closing || s === XenbusState.Closed, 'Closing').catch(
        () => undefined,
      );
      await this.xs.write(`${this.frontend}/state`, String(XenbusState.Closed)).catch(() => undefined);
    }
    for (const q of this.queues) q.close();
    this.queues = [];
    this.endPersistentGrants();
    for (const u of this.waiting.splice(0)) u.reject(new Error('blkfront closed'));
  }

  // ---------------------------------------------------------------- I/O

  read(sector: number, length: number, opts: IoOptions = {}): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    return this.rw(BlkifOp.READ, sector, out, opts).then(() => out);
  }

  write(sector: number, data: Uint8Array, opts: IoOptions = {}): Promise<void> {
    if (this.infoValue?.readOnly) return Promise.reject(new Error(`${this.frontend}: device is read-only`));
    return this.rw(BlkifOp.WRITE, sector, data, opts);
  }

  /** blkif_queue_discard_req; rejects when the backend offers no discard. */
  discard(sector: number, nrSectors: number, opts: IoOptions = {}): Promise<void> {
    if (!this.info.discard)
      return Promise.reject(new Error(`${this.frontend}: backend does not offer feature-discard`));
    return this.enqueue(BlkifOp.DISCARD, sector, nrSectors, 0, undefined, opts.queue);
  }

  /** REQ_PREFLUSH: FLUSH_DISKCACHE, else WRITE_BARRIER, else nothing to do (no volatile cache). */
  flush(opts: IoOptions = {}): Promise<void> {
    const i = this.info;
    if (i.flush) return this.enqueue(BlkifOp.FLUSH_DISKCACHE, 0, 0, 0, undefined, opts.queue);
    if (i.barrier) return this.enqueue(BlkifOp.WRITE_BARRIER, 0, 0, 0, undefined, opts.queue);
    return Promise.resolve();
  }

  /** Segments one request may carry now. */
  get maxSegmentsPerRequest(): number {
    return Math.max(MAX_SEGMENTS_PER_REQUEST, this.info.indirectSegments);
  }

  private rw(op: number, sector: number, data: Uint8Array, opts: IoOptions): Promise<void> {
    if (data.length === 0 || data.length % SECTOR_SIZE !== 0)
      return Promise.reject(new RangeError(`I/O length ${data.length} is not a positive multiple of ${SECTOR_SIZE}`));
    const first = opts.firstSect ?? 0;
    if (!Number.isInteger(first) || first < 0 || first >= SECTORS_PER_PAGE)
      return Promise.reject(new RangeError('firstSect must be 0..7'));
    const maxSegs = this.maxSegmentsPerRequest;
    const total = data.length / SECTOR_SIZE;
    const parts: Promise<void>[] = [];
    let done = 0;
    let fs = first;
    while (done < total) {
      // As many sectors as fit in maxSegs pages starting at sector fs of the first page.
      const n = Math.min(total - done, maxSegs * SECTORS_PER_PAGE - fs);
      parts.push(
        this.enqueue(op, sector + done, n, fs, data.subarray(done * SECTOR_SIZE, (done + n) * SECTOR_SIZE), opts.queue),
      );
      done += n;
      fs = 0;
    }
    return Promise.all(parts).then(() => undefined);
  }

  private enqueue(op: number, sector: number, nrSectors: number, firstSect: number, data: Uint8Array | undefined, queue: number | undefined): Promise<void> {
    if (this.backend === '' || this.shutDown) return Promise.reject(new Error(`${this.frontend}: not connected`));
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ op, sector, nrSectors, firstSect, data, queue, tries: 0, resolve, reject });
      this.pump();
    });
  }

  /** Starts waiting units while the queue depth and the rings allow (kick_pending_request_queues). */
  private pump(): void {
    if (!this.infoValue) return;
    const depth = this.opts.queueDepth ?? 32;
    while (this.waiting.length && this.inFlight < depth) {
      const u = this.waiting[0]!;
      const qi = u.queue !== undefined ? u.queue % this.queues.length : this.rr % this.queues.length;
      const q = this.queues[qi]!;
      if (!q.canSubmit()) {
        if (u.queue !== undefined) break;
        // Try the other rings before waiting.
        const other = this.queues.find((x) => x.canSubmit());
        if (!other) break;
        this.waiting.shift();
        if (!this.tryStart(u, other)) break;
        continue;
      }
      if (u.queue === undefined) this.rr++;
      this.waiting.shift();
      if (!this.tryStart(u, q)) break;
    }
  }

  /**
   * Starts u, or, when guest memory or grants run out, puts it back to wait for completions
   * (false) — or fails it when nothing is in flight that could free anything.
   */
  private tryStart(u: Unit, q: BlkfrontQueue): boolean {
    try {
      this.start(u, q);
      return true;
    } catch (err) {
      if (this.inFlight > 0) {
        this.waiting.unshift(u);
        return false;
      }
      u.reject(err as Error);
      return true;
    }
  }

  private takePage(): number {
    return this.freePages.pop() ?? this.opts.guest.allocPages(1);
  }

  /** blkif_free: the persistent grants not in use are ended and their pages freed. */
  private endPersistentGrants(): void {
    for (const g of this.freeGrants.splice(0)) {
      this.opts.guest.endGrant(g.gref);
      this.freePages.push(g.page);
      this.allGrants--;
    }
    this.persistent = false;
  }

  private start(u: Unit, q: BlkfrontQueue): void {
    const guest = this.opts.guest;
    const id = this.nextId++;
    const granted: Granted[] = [];
    const taken: number[] = [];
    const persistent = this.persistent;
    // A data or indirect page with its grant: a fresh one (read-only when the backend only
    // reads it), or with persistent grants a reused writable one (get_free_grant).
    const take = (readonly: boolean): Granted => {
      if (persistent) {
        let g = this.freeGrants.pop();
        if (g === undefined) {
          const page = this.takePage();
          g = { page, gref: guest.grant(page, false) };
          this.allGrants++;
          this.stats.persistentGrants = Math.max(this.stats.persistentGrants, this.allGrants);
        }
        granted.push(g);
        return g;
      }
      const page = this.takePage();
      taken.push(page);
      const g = { page, gref: guest.grant(page, readonly) };
      granted.push(g);
      return g;
    };
    const putBack = () => {
      if (persistent) {
        // blkif_completion: back at the head of the free list.
        for (let i = granted.length - 1; i >= 0; i--) this.freeGrants.push(granted[i]!);
        return;
      }
      for (const g of granted) guest.endGrant(g.gref);
      for (const g of granted) this.freePages.push(g.page);
    };
    try {
      return this.build(u, q, id, take, putBack);
    } catch (err) {
      putBack();
      throw err;
    }
  }

  private build(
    u: Unit, q: BlkfrontQueue, id: bigint, take: (readonly: boolean) => Granted, putBack: () => void,
  ): void {
    const guest = this.opts.guest;
    let req: BlkifRequest;
    const dataPages: Array<{ page: number; first: number; last: number; at: number }> = [];
    if (u.op === BlkifOp.READ || u.op === BlkifOp.WRITE) {
      const segments: Segment[] = [];
      let left = u.nrSectors;
      let fs = u.firstSect;
      let at = 0;
      while (left > 0) {
        const n = Math.min(left, SECTORS_PER_PAGE - fs);
        // Data pages: read-only for writes (the backend only reads them), as blkfront grants them.
        const { page, gref } = take(u.op === BlkifOp.WRITE);
        const bytes = guest.page(page);
        if (u.op === BlkifOp.WRITE) bytes.set(u.data!.subarray(at, at + n * SECTOR_SIZE), fs * SECTOR_SIZE);
        segments.push({ gref, firstSect: fs, lastSect: fs + n - 1 });
        dataPages.push({ page, first: fs, last: fs + n - 1, at });
        at += n * SECTOR_SIZE;
        left -= n;
        fs = 0;
      }
      if (segments.length <= MAX_SEGMENTS_PER_REQUEST) {
        req = { kind: 'rw', operation: u.op, innerOperation: u.op, nrSegments: segments.length, handle: this.opts.devid & 0xffff, id, sectorNumber: BigInt(u.sector), segments, indirectGrefs: [] };
      } else {
        const nPages = Math.ceil(segments.length / SEGMENTS_PER_INDIRECT_PAGE);
        const indirectGrefs: number[] = [];
        for (let p = 0; p < nPages; p++) {
          const { page, gref } = take(true);
          const bytes = guest.page(page);
          bytes.fill(0);
          const slice = segments.slice(p * SEGMENTS_PER_INDIRECT_PAGE, (p + 1) * SEGMENTS_PER_INDIRECT_PAGE);
          slice.forEach((s, i) => writeSegment(bytes, i * SEGMENT_SIZE, s));
          indirectGrefs.push(gref);
        }
        req = { kind: 'rw', operation: BlkifOp.INDIRECT, innerOperation: u.op, nrSegments: segments.length, handle: this.opts.devid & 0xffff, id, sectorNumber: BigInt(u.sector), segments: [], indirectGrefs };
        this.stats.indirect++;
      }
    } else if (u.op === BlkifOp.DISCARD) {
      req = { kind: 'discard', operation: BlkifOp.DISCARD, flag: 0, handle: this.opts.devid & 0xffff, id, sectorNumber: BigInt(u.sector), nrSectors: BigInt(u.nrSectors) };
    } else {
      req = { kind: 'rw', operation: u.op, innerOperation: u.op, nrSegments: 0, handle: this.opts.devid & 0xffff, id, sectorNumber: 0n, segments: [], indirectGrefs: [] };
    }
    this.inFlight++;
    this.stats.requests++;
    const before = q.notifies;
    q.submit(req, {
      complete: (rsp) => {
        this.inFlight--;
        if (rsp.status === BlkifStatus.OKAY && u.op === BlkifOp.READ) {
          for (const d of dataPages)
            u.data!.set(guest.page(d.page).subarray(d.first * SECTOR_SIZE, (d.last + 1) * SECTOR_SIZE), d.at);
        }
        // blkif_completion: the backend is done with the pages; end access before reuse (or,
        // persistent, put the grants back for the next request).
        putBack();
        this.finish(u, rsp);
      },
    });
    this.stats.notifies += q.notifies - before;
  }

  private finish(u: Unit, rsp: BlkifResponse): void {
    if (rsp.status === BlkifStatus.OKAY) return u.resolve();
    if (rsp.status === RECOVER) {
      // blkif_recover: the ring went away under this request; issue it again.
      this.waiting.unshift(u);
      return;
    }
    const name = opName(u.op);
    if (rsp.status === BlkifStatus.EOPNOTSUPP && this.infoValue) {
      // blkif_interrupt: "write barrier/flush/discard op failed", feature turned off.
      if (u.op === BlkifOp.FLUSH_DISKCACHE) this.infoValue = { ...this.infoValue, flush: false };
      if (u.op === BlkifOp.WRITE_BARRIER) this.infoValue = { ...this.infoValue, barrier: false };
      if (u.op === BlkifOp.DISCARD) this.infoValue = { ...this.infoValue, discard: false };
    }
    if (rsp.status === BlkifStatus.ERROR && u.tries < (this.opts.retries ?? 0)) {
      u.tries++;
      this.stats.retries++;
      this.waiting.push(u);
      this.pump();
      return;
    }
    u.reject(new BlkfrontIoError(name, u.sector, rsp.status));
  }

  // ---------------------------------------------------------------- raw access (tests)

  readonly raw = {
    /** The shared ring of queue q. */
    ring: (q = 0): FrontRing => this.queue(q).ring,
    /** Copies bytes (at most one slot) into the next request slot and advances the private req_prod. */
    putSlot: (bytes: Uint8Array, q = 0): number => {
      const ring = this.queue(q).ring;
      const idx = ring.reqProdPvt;
      const slot = ring.slotBytes(idx);
      slot.fill(0);
      slot.set(bytes.subarray(0, slot.length));
      ring.reqProdPvt = (idx + 1) >>> 0;
      return idx;
    },
    /** Encodes a request with this frontend's ABI into the next slot (no grants are made). */
    putRequest: (req: BlkifRequest, q = 0): number => this.queue(q).ring.putRequest(req),
    /** Publishes req_prod and notifies, whatever req_event says. */
    push: (q = 0): void => {
      this.queue(q).ring.pushRequests();
      this.queue(q).kick();
    },
    /** Writes req_prod directly (a hostile frontend) and notifies. */
    setReqProd: (value: number, q = 0): void => {
      this.queue(q).ring.setReqProd(value);
      this.queue(q).kick();
    },
    /** A copy of the bytes of the slot for index idx. */
    slot: (idx: number, q = 0): Uint8Array => this.queue(q).ring.slotBytes(idx).slice(),
    /** The guest-side event-channel port of queue q (a bench guest takes over its handler). */
    port: (q = 0): number => this.queue(q).port,
    /** Responses that matched no request of ours (answers to raw requests). */
    unmatched: (q = 0): BlkifResponse[] => this.queue(q).unmatched,
    /** Grants a fresh guest page to dom0 (optionally filled); for hand-made requests. */
    grantPage: (readonly: boolean, fill?: Uint8Array): { page: number; gref: number; bytes: Uint8Array } => {
      const page = this.takePage();
      const bytes = this.opts.guest.page(page);
      bytes.fill(0);
      if (fill) bytes.set(fill.subarray(0, PAGE_SIZE));
      return { page, gref: this.opts.guest.grant(page, readonly), bytes };
    },
    /** The next request id this frontend will use; hand-made requests should pick others. */
    nextId: (): bigint => this.nextId,
  };

  private queue(q: number): BlkfrontQueue {
    const x = this.queues[q];
    if (!x) throw new RangeError(`no queue ${q}`);
    return x;
  }
}

/** A status the backend never sends: marks requests re-issued by blkif_recover. */
const RECOVER = 0x7fff;

function opName(op: number): string {
  return Object.entries(BlkifOp).find(([, v]) => v === op)?.[0]?.toLowerCase() ?? `op ${op}`;
}
