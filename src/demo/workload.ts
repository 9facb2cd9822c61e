// The demo's workload through the simulated blkfront: a sequential write and read-back, then a
// timed mix of random reads and writes (small, medium, and large ones that need indirect
// requests), flushes and discards at a queue depth; every byte read is checked against the
// model. Requests in flight never overlap, so the expected content is always well defined.
import { SECTOR_SIZE } from '../blkif/constants';
import type { SimBlkfront } from '../sim/blkfront';
import type { DiskModel } from './model';

export interface WorkloadOptions {
  readonly seconds: number;
  readonly queueDepth: number;
  /** Bytes written then read back sequentially first. */
  readonly sequentialBytes: number;
  readonly seed: number;
  /** Called with the fraction done (0..1). */
  readonly progress?: (fraction: number) => void;
  /** Reports a mismatch (the first few are printed). */
  readonly report?: (sector: number, why: string) => void;
}

export interface WorkloadResult {
  ops: number;
  reads: number;
  writes: number;
  flushes: number;
  discards: number;
  bytesRead: number;
  bytesWritten: number;
  mismatches: number;
  errors: number;
  /** Per-op latency, ms. */
  latencies: number[];
  elapsedMs: number;
  /** 1 MiB regions touched (the image check reads only these). */
  touched: Set<number>;
}

const MIB = 1024 * 1024;

export async function runWorkload(front: SimBlkfront, model: DiskModel, o: WorkloadOptions): Promise<WorkloadResult> {
  const sectors = front.info.sectors;
  const r: WorkloadResult = { ops: 0, reads: 0, writes: 0, flushes: 0, discards: 0, bytesRead: 0, bytesWritten: 0, mismatches: 0, errors: 0, latencies: [], elapsedMs: 0, touched: new Set() };
  let rnd = o.seed >>> 0 || 1;
  const rand = (): number => {
    rnd ^= rnd << 13;
    rnd ^= rnd >>> 17;
    rnd ^= rnd << 5;
    return (rnd >>> 0) / 4294967296;
  };
  const touch = (sector: number, count: number) => {
    for (
      let m = Math.floor((sector * SECTOR_SIZE) / MIB);
      m <= Math.floor(((sector + count) * SECTOR_SIZE - 1) / MIB);
      m++
    )
      r.touched.add(m);
  };
  const started = performance.now();
  const timed = async (fn: () => Promise<void>) => {
    const t0 = performance.now();
    await fn();
    r.latencies.push(performance.now() - t0);
    r.ops++;
  };
  const doWrite = (sector: number, count: number, firstSect = 0) =>
    timed(async () => {
      const data = model.writeData(sector, count);
      touch(sector, count);
      await front.write(sector, data, { firstSect });
      r.writes++;
      r.bytesWritten += data.length;
    });
  const doRead = (sector: number, count: number, firstSect = 0) =>
    timed(async () => {
      const data = await front.read(sector, count * SECTOR_SIZE, { firstSect });
      r.reads++;
      r.bytesRead += data.length;
      r.mismatches += model.check(sector, data, o.report);
    });

  // Phase 1: sequential write, then sequential read-back, 256 KiB requests at the queue depth.
  const seqSectors = Math.min(sectors, Math.floor(o.sequentialBytes / SECTOR_SIZE));
  const chunk = 512;
  for (const phase of ['write', 'read'] as const) {
    const running = new Set<Promise<void>>();
    for (let s = 0; s < seqSectors; s += chunk) {
      const n = Math.min(chunk, seqSectors - s);
      const p: Promise<void> = (phase === 'write' ? doWrite(s, n) : doRead(s, n))
        .catch(() => void r.errors++)
        .finally(() => running.delete(p));
      running.add(p);
      if (running.size >= o.queueDepth) await Promise.race(running);
    }
    await Promise.all(running);
    if (phase === 'write') {
      await timed(() => front.flush());
      r.flushes++;
    }
    o.progress?.(phase === 'write' ? 0.1 : 0.2);
  }

  // Phase 2: the timed random mix.
  const inFlight: Array<{ start: number; end: number }> = [];
  const overlaps = (start: number, end: number) => inFlight.some((x) => start < x.end && x.start < end);
  const pickRange = (count: number, align: number): number | undefined => {
    for (let tries = 0; tries < 8; tries++) {
      let s = Math.floor(rand() * Math.max(1, sectors - count));
      s -= s % align;
      if (!overlaps(s, s + count)) return s;
    }
    return undefined;
  };
  const size = (): number => {
    const x = rand();
    if (x < 0.5) return 8; // 4 KiB
    if (x < 0.8) return 16 + Math.floor(rand() * 112); // 8-64 KiB
    return 256 + Math.floor(rand() * 1793); // 128 KiB - 1 MiB: indirect
  };
  const mixStart = performance.now();
  const mixMs = o.seconds * 1000;
  const running = new Set<Promise<void>>();
  const canDiscard = front.info.discard;
  while (performance.now() - mixStart < mixMs) {
    const x = rand();
    let op: Promise<void> | undefined;
    if (x < 0.06) {
      op = timed(() => front.flush()).then(() => void r.flushes++);
    } else if (x < 0.1 && canDiscard) {
      const count = 8 * (1 + Math.floor(rand() * 64));
      const s = pickRange(count, 8);
      if (s !== undefined) {
        const range = { start: s, end: s + count };
        inFlight.push(range);
        model.discard(s, count);
        touch(s, count);
        op = timed(() => front.discard(s, count))
          .then(() => void r.discards++)
          .finally(() => inFlight.splice(inFlight.indexOf(range), 1));
      }
    } else {
      const count = Math.min(size(), sectors);
      const s = pickRange(count, rand() < 0.7 ? 8 : 1);
      if (s !== undefined) {
        const range = { start: s, end: s + count };
        inFlight.push(range);
        const firstSect = rand() < 0.3 ? Math.floor(rand() * 8) : 0;
        op = (x < 0.55 ? doWrite(s, count, firstSect) : doRead(s, count, firstSect)).finally(() =>
          inFlight.splice(inFlight.indexOf(range), 1),
        );
      }
    }
    if (op) {
      const p: Promise<void> = op.catch(() => void r.errors++).finally(() => running.delete(p));
      running.add(p);
    }
    if (running.size >= o.queueDepth || !op) await Promise.race(running.size ? running : [Promise.resolve()]);
    o.progress?.(0.2 + 0.6 * Math.min(1, (performance.now() - mixStart) / mixMs));
  }
  await Promise.all(running);
  await timed(() => front.flush());
  r.flushes++;

  // Phase 3: read back every touched region and check it.
  const regions = [...r.touched].sort((a, b) => a - b);
  const perRegion = MIB / SECTOR_SIZE;
  let i = 0;
  const checking = new Set<Promise<void>>();
  for (const m of regions) {
    const s = m * perRegion;
    const n = Math.min(perRegion, sectors - s);
    const p: Promise<void> = doRead(s, n).catch(() => void r.errors++).finally(() => checking.delete(p));
    checking.add(p);
    if (checking.size >= o.queueDepth) await Promise.race(checking);
    o.progress?.(0.8 + 0.15 * (++i / regions.length));
  }
  await Promise.all(checking);
  r.elapsedMs = performance.now() - started;
  return r;
}
