// The engine's side of the I/O benchmark: the worker's Device (claim, state machine, Engine)
// over the in-process simulated hypervisor, and a lean simulated guest that keeps N requests in
// flight on one ring. The guest connects through the simulated Linux blkfront (the real
// handshake), then takes over that ring: each slot owns granted data pages (and, for large
// requests, a written indirect descriptor page) for the whole run, as a frontend with
// persistent buffers would, so the guest's own cost per request is a ring write and a
// notification — what is left to measure is the backend and the simulated hypervisor.
import * as fs from 'node:fs';
import type { BlkifRequest } from '../src/blkif/request';
import { BlkifOp, MAX_SEGMENTS_PER_REQUEST, PAGE_SIZE, SECTOR_SIZE, SEGMENTS_PER_INDIRECT_PAGE } from '../src/blkif/constants';
import { SEGMENT_SIZE, writeSegment } from '../src/blkif/codec';
import type { FrontRing } from '../src/blkif/ring';
import { SimBlkfront } from '../src/sim/blkfront';
import type { SimGuest } from '../src/sim/guest';
import { SimHypervisor } from '../src/sim/platform';
import { Toolstack } from '../src/sim/toolstack';
import { SimStore } from '../src/sim/xenstore';
import { claimDevice } from '../src/worker/device/claim';
import type { IoCallback } from '../src/engine/block-file';
import { Image } from '../src/image/image';
import { Device, type DeviceImage } from '../src/worker/device/device';
import type { Pattern } from './patterns';

export interface EngineRunSpec {
  readonly file: string;
  readonly direct: boolean;
  readonly pattern: Pattern;
  readonly seconds: number;
  readonly warmupSeconds: number;
  /**
   * Experiment, not the product: reads and writes done synchronously on the main thread
   * (readSync/writeSync) instead of through libuv's pool — the upper bound of a path that
   * needs no pool thread when the data is in the page cache (preadv2 RWF_NOWAIT, io_uring).
   */
  readonly inline?: boolean;
  /** false: the image's reads skip preadv2(RWF_NOWAIT) and all go to the pool (Image's `nowait`). */
  readonly nowait?: boolean;
  /** false: io_uring off, the thread-pool path (Image's `uring`). */
  readonly uring?: boolean;
}

export interface EngineRunResult {
  /** Completed reads/writes per second in the measured window (flushes not counted, as fio). */
  iops: number;
  bw: number;
  /** Ring requests answered in the window (writes and flushes for the fsync pattern). */
  requests: number;
  /** CPU time (user + system) of the whole process per ring request, microseconds. */
  cpuUsPerRequest: number;
  /** Share of one core the process used in the window. */
  cpuCores: number;
  rssBytes: number;
  maxRssBytes: number;
  threadpool: number;
  errors: number;
  /** Buffered reads served inline by preadv2(RWF_NOWAIT) / partly / not at all (whole run). */
  nowait?: { hits: number; partial: number; misses: number; enabled: boolean };
  /** Whole run: grant-copy calls and segments per call; notifications (to the guest: in the window). */
  engine: { grantBatches: number; segmentsPerBatch: number; notifiesToGuest: number; notifiesToBackend: number };
}

const GUEST_DOMID = 1;

interface Slot {
  readonly index: number;
  readonly req: BlkifRequest & { kind: 'rw' };
  /** The fsync pattern: the write is done, the flush is in flight. */
  flushing: boolean;
}

export async function runEngine(spec: EngineRunSpec): Promise<EngineRunResult> {
  const p = spec.pattern;
  const size = fs.statSync(spec.file).size;
  const store = new SimStore();
  const hv = new SimHypervisor();
  const platform = hv.platform();
  const segsPerReq = p.bs / PAGE_SIZE;
  const indirectPages = segsPerReq > MAX_SEGMENTS_PER_REQUEST ? Math.ceil(segsPerReq / SEGMENTS_PER_INDIRECT_PAGE) : 0;
  const guestPages = 64 + p.depth * (segsPerReq + indirectPages);
  let warnings = 0;
  let image: Image | undefined;
  const dom0 = store.connect(0);
  const toolstack = new Toolstack(dom0);
  await toolstack.createDomain(GUEST_DOMID, 'bench-guest');
  store.introduceDomain(GUEST_DOMID);
  const guest = hv.addGuest({ domid: GUEST_DOMID, pages: guestPages, maxGrants: guestPages + 64 });
  const vbd = await toolstack.addVbd({ domid: GUEST_DOMID, target: spec.file, access: 'rw' });
  await claimDevice(dom0, vbd.backend);
  const device = new Device(store.connect(0), platform, vbd.backend, {
    direct: spec.direct,
    // Opened here as Device would (Image.open), to read its NOWAIT counters afterwards.
    openImage: (file: string, readOnly: boolean) => {
      const opts = { readOnly, direct: spec.direct, nowait: spec.nowait !== false, uring: spec.uring !== false };
      image = Image.open(file, opts);
      return spec.inline ? inlineImage(image) : image;
    },
    engine: { fsyncIntervalMs: 0 },
    warn: (m) => {
      if (warnings++ < 3) process.stderr.write(`bench engine: ${m}\n`);
    },
  });
  await device.start();
  if ((await dom0.tryRead(`${vbd.backend}/afsfile-status`)) !== 'opened')
    throw new Error(`the device did not open ${spec.file}: ${(await dom0.tryRead(`${vbd.backend}/afsfile-error`)) ?? '?'}`);
  await toolstack.hotplugConnected(vbd);
  const front = new SimBlkfront({ xs: store.connect(GUEST_DOMID), guest, devid: vbd.devid, maxRingPageOrder: ringOrderFor(p.depth), maxQueues: 1, maxIndirectSegments: 256, queueDepth: p.depth });
  await front.connect();
  const result = await drive(front, guest, spec, size);
  result.engine.notifiesToBackend = [...guest.notifiesSent.values()].reduce((a, b) => a + b, 0);
  const g = platform.grants;
  result.engine.grantBatches = g.batches;
  result.engine.segmentsPerBatch = g.batches ? g.segmentsCopied / g.batches : 0;
  result.errors += device.stats().engine?.errors ?? 0;
  if (image && !spec.direct) result.nowait = image.nowaitStats;
  await device.quiesce();
  platform.close();
  hv.close();
  return result;
}

/** The image with its reads and writes done in the caller's stack (see EngineRunSpec.inline). */
function inlineImage(img: Image): DeviceImage {
  const sync = (write: boolean, buf: Uint8Array, offset: number, cb: IoCallback) => {
    let err: NodeJS.ErrnoException | null = null;
    try {
      for (let at = 0; at < buf.length; ) {
        const n = write ? fs.writeSync(img.fd, buf, at, buf.length - at, offset + at) : fs.readSync(img.fd, buf, at, buf.length - at, offset + at);
        if (n === 0) throw Object.assign(new Error('short I/O'), { code: 'EIO' });
        at += n;
      }
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    }
    cb(err);
  };
  return {
    path: img.path, size: img.size, readOnly: img.readOnly, canDiscard: img.canDiscard,
    read: (buf, offset, cb) => sync(false, buf, offset, cb),
    write: (buf, offset, cb) => sync(true, buf, offset, cb),
    fsync: (cb) => img.fsync(cb),
    discard: (offset, length, cb) => img.discard(offset, length, cb),
    close: () => img.close(),
  };
}

/** The smallest ring (x86_64: 32 slots per page) that holds `depth` requests. */
function ringOrderFor(depth: number): number {
  let order = 0;
  while ((32 << order) < depth) order++;
  return order;
}

/** Runs the pattern on the connected ring; resolves after the measured window and the drain. */
function drive(front: SimBlkfront, guest: SimGuest, spec: EngineRunSpec, size: number): Promise<EngineRunResult> {
  const p = spec.pattern;
  const ring: FrontRing = front.raw.ring(0);
  const port = front.raw.port(0);
  const write = p.rw === 'write' || p.rw === 'randwrite';
  const sequential = p.rw === 'read' || p.rw === 'write';
  const blocks = Math.floor(size / p.bs);
  const sectorsPerBlock = p.bs / SECTOR_SIZE;
  const op = write ? BlkifOp.WRITE : BlkifOp.READ;
  const slots: Slot[] = [];
  for (let i = 0; i < p.depth; i++) slots.push({ index: i, req: makeRequest(front, i, op, p.bs), flushing: false });
  const flushReq: BlkifRequest = { kind: 'rw', operation: BlkifOp.FLUSH_DISKCACHE, innerOperation: BlkifOp.FLUSH_DISKCACHE, nrSegments: 0, handle: 0, id: 0n, sectorNumber: 0n, segments: [], indirectGrefs: [] };

  let rnd = (Date.now() ^ (process.pid << 8)) >>> 0 || 1;
  let cursor = 0;
  const nextBlock = (): number => {
    if (sequential) {
      const b = cursor;
      cursor = cursor + 1 >= blocks ? 0 : cursor + 1;
      return b;
    }
    rnd ^= rnd << 13;
    rnd ^= rnd >>> 17;
    rnd ^= rnd << 5;
    return (rnd >>> 0) % blocks;
  };

  let stopping = false;
  let inFlight = 0;
  let done = 0; // data requests completed
  let answered = 0; // ring requests answered
  let errors = 0;
  let irqs = 0;
  const submit = (s: Slot) => {
    s.req.id = BigInt(s.index);
    s.req.sectorNumber = BigInt(nextBlock() * sectorsPerBlock);
    ring.putRequest(s.req);
    inFlight++;
  };
  const submitFlush = (s: Slot) => {
    flushReq.id = BigInt(s.index);
    ring.putRequest(flushReq);
    inFlight++;
  };

  return new Promise((resolve) => {
    let window = { t: 0, done: 0, answered: 0, irqs: 0, cpu: process.cpuUsage() };
    let result: EngineRunResult | undefined;
    let timer: NodeJS.Timeout | undefined;
    const measure = (): EngineRunResult => {
      const secs = (performance.now() - window.t) / 1000;
      const cpu = process.cpuUsage(window.cpu);
      const n = done - window.done;
      const reqs = answered - window.answered;
      const cpuUs = cpu.user + cpu.system;
      return {
        iops: n / secs,
        bw: (n * p.bs) / secs,
        requests: reqs,
        cpuUsPerRequest: reqs ? cpuUs / reqs : NaN,
        cpuCores: cpuUs / 1e6 / secs,
        rssBytes: process.memoryUsage().rss,
        maxRssBytes: process.resourceUsage().maxRSS * 1024,
        threadpool: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
        errors: 0,
        engine: { grantBatches: 0, segmentsPerBatch: 0, notifiesToGuest: irqs - window.irqs, notifiesToBackend: 0 },
      };
    };
    const finish = () => {
      clearTimeout(timer);
      const r = result ?? measure();
      r.errors = errors;
      resolve(r);
    };
    // The guest's interrupt handler: consume responses, refill their slots, push once.
    guest.onEvent(port, () => {
      irqs++;
      do {
        while (ring.unconsumedResponses() > 0) {
          const rsp = ring.takeResponse();
          inFlight--;
          answered++;
          if (rsp.status !== 0) {
            errors++;
            stopping = true; // the round is void: end it
          }
          const s = slots[Number(rsp.id)]!;
          if (p.fsync && !s.flushing) {
            done++;
            s.flushing = true;
            if (!stopping) submitFlush(s);
            continue;
          }
          s.flushing = false;
          if (!p.fsync) done++;
          if (!stopping) submit(s);
        }
        if (ring.pushRequests()) guest.notify(port);
      } while (ring.finalCheckForResponses());
      if (stopping && inFlight === 0) finish();
    });
    for (const s of slots) submit(s);
    if (ring.pushRequests()) guest.notify(port);

    timer = setTimeout(() => {
      window = { t: performance.now(), done, answered, irqs, cpu: process.cpuUsage() };
      timer = setTimeout(() => {
        result = measure();
        stopping = true;
        if (inFlight === 0) finish();
      }, spec.seconds * 1000);
    }, spec.warmupSeconds * 1000);
  });
}

/** A request for slot i whose data pages (and indirect page) are granted once, for the run. */
function makeRequest(front: SimBlkfront, i: number, op: number, bs: number): BlkifRequest & { kind: 'rw' } {
  const n = bs / PAGE_SIZE;
  const segments = [];
  for (let k = 0; k < n; k++) segments.push({ gref: front.raw.grantPage(false).gref, firstSect: 0, lastSect: 7 });
  const id = BigInt(i);
  if (n <= MAX_SEGMENTS_PER_REQUEST)
    return { kind: 'rw', operation: op, innerOperation: op, nrSegments: n, handle: 0, id, sectorNumber: 0n, segments, indirectGrefs: [] };
  const indirectGrefs: number[] = [];
  for (let pg = 0; pg * SEGMENTS_PER_INDIRECT_PAGE < n; pg++) {
    const page = front.raw.grantPage(true);
    const part = segments.slice(pg * SEGMENTS_PER_INDIRECT_PAGE, (pg + 1) * SEGMENTS_PER_INDIRECT_PAGE);
    part.forEach((s, k) => writeSegment(page.bytes, k * SEGMENT_SIZE, s));
    indirectGrefs.push(page.gref);
  }
  return { kind: 'rw', operation: BlkifOp.INDIRECT, innerOperation: op, nrSegments: n, handle: 0, id, sectorNumber: 0n, segments: [], indirectGrefs };
}

