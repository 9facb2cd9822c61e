// The engine against fio on the same file, side by side. Each round runs, per variant (disk
// buffered, disk O_DIRECT, /dev/shm) and pattern: fio psync, the engine (io_uring), the engine
// with io_uring off (its thread-pool fallback), fio io_uring — the engine between its
// baselines, the order reversed every round — and ratios are taken within a round only, so a
// noisy neighbour hits both sides alike. Targets are judged against fio io_uring at the same
// iodepth; for 1 MiB buffered against fio plus one memcpy of the same bytes (measured in the
// same round), the copy the engine cannot avoid (page cache to pool; the grant copy is the
// second).
import type { EngineRunResult, EngineRunSpec } from './engine-guest';
import { bundleEngineChild, runEngineRound, threadpoolFor } from './engine';
import { performance } from 'node:perf_hooks';
import { type FioEngine, type IoResult, fioVersion, ioUringWorks, runFio } from './fio';
import { PATTERNS, type Pattern, type Variant, unitOf, valueOf, variants } from './patterns';
import { type Row, progress } from './report';
import { type Summary, summarize } from './stats';
import { type WorkFile, makeWorkFile } from './workfile';

export interface IoBenchOptions {
  rounds: number;
  /** Measured seconds per run (after warmupSeconds). */
  seconds: number;
  /** fio's ramp time. */
  warmupSeconds: number;
  /**
   * The engine's: longer, because each round is a fresh process whose JavaScript is not yet
   * optimised; the long-running worker it stands for always is.
   */
  engineWarmupSeconds: number;
  /** Bytes of the test file. */
  fileSize: number;
  /** Directory of the disk file (ext4 here: /var/tmp). */
  diskDir: string;
  shm: boolean;
  patterns?: readonly Pattern[];
  /** UV_THREADPOOL_SIZE for every engine round; default: what the executable picks. */
  threadpool?: number;
}

interface Series {
  engine: number[];
  psync: number[];
  uring: number[];
  vsPsync: number[];
  vsUring: number[];
  /** The engine with io_uring off (thread pool), and its ratio to fio io_uring. */
  pool: number[];
  poolVsUring: number[];
  poolCpuUs: number[];
  /** fio io_uring + one memcpy of the same bytes (MB/s; 1 MiB buffered only), and the ratio. */
  memcpyBase: number[];
  vsMemcpy: number[];
  psyncCpuUs: number[];
  uringCpuUs: number[];
  cpuUs: number[];
  rssMiB: number[];
  segsPerCopy: number[];
  reqsPerNotify: number[];
  threadpool: number;
}

export interface IoBenchMeta {
  fio: string | undefined;
  ioUring: boolean;
  engineNode: string;
}

export function benchIo(o: IoBenchOptions, meta: Partial<IoBenchMeta> = {}): Row[] {
  const patterns = o.patterns ?? PATTERNS;
  meta.fio = fioVersion();
  if (!meta.fio) progress('io: fio is not installed (apt-get install fio): engine figures only, no ratios');
  bundleEngineChild();
  const vs = variants(o.diskDir, o.shm);
  const files = new Map<string, WorkFile>();
  const series = new Map<string, Series>();
  try {
    for (const v of vs) {
      if (!files.has(v.dir)) {
        progress(`io: writing a ${o.fileSize >> 20} MiB test file in ${v.dir}`);
        files.set(v.dir, makeWorkFile(v.dir, o.fileSize));
      }
    }
    const first = files.values().next().value as WorkFile;
    const uring = meta.fio !== undefined && ioUringWorks(first.path, first.size);
    meta.ioUring = uring;
    if (meta.fio && !uring) progress('io: fio io_uring does not work here (kernel or container): psync baseline only');
    for (let round = 0; round < o.rounds; round++) {
      for (const v of vs) {
        const file = files.get(v.dir)!;
        for (const p of patterns) {
          const key = `${v.name}\0${p.name}`;
          const tp = o.threadpool ?? threadpoolFor();
          let s = series.get(key);
          if (!s) {
            s = {
              engine: [], psync: [], uring: [], vsPsync: [], vsUring: [], pool: [], poolVsUring: [], poolCpuUs: [],
              memcpyBase: [], vsMemcpy: [], psyncCpuUs: [], uringCpuUs: [], cpuUs: [], rssMiB: [], segsPerCopy: [],
              reqsPerNotify: [], threadpool: tp,
            };
            series.set(key, s);
          }
          progress(`io: round ${round + 1}/${o.rounds} ${v.name}: ${p.name}`);
          const fio = (engine: FioEngine): IoResult | undefined =>
            meta.fio && (engine === 'psync' || uring)
              ? runFio({ file: file.path, size: file.size, pattern: p, engine, direct: v.direct, seconds: o.seconds, warmupSeconds: o.warmupSeconds })
              : undefined;
          // Each contender starts from the same cache state (buffered: all of the file cached).
          const warm = (): void => { if (!v.direct) file.warm(); };
          const steps: Array<() => void> = [];
          let ps: IoResult | undefined;
          let ur: IoResult | undefined;
          let e!: EngineRunResult;
          let pool!: EngineRunResult;
          steps.push(() => (ps = fio('psync')));
          steps.push(() => (e = engineRound(file, v, p, o, tp, true)));
          steps.push(() => (pool = engineRound(file, v, p, o, tp, false)));
          steps.push(() => (ur = fio('io_uring')));
          if (round % 2 === 1) steps.reverse();
          for (const step of steps) {
            warm();
            step();
          }
          const ev = valueOf(p, e);
          const nw = pool.nowait;
          if (nw && !p.rw.endsWith('write')) {
            const reads = nw.hits + nw.partial + nw.misses;
            progress(`io:   engine, thread pool: ${reads ? ((100 * nw.hits) / reads).toFixed(1) : 0}% of ${reads} reads from the page cache inline (${nw.partial} partly)${nw.enabled ? '' : ', RWF_NOWAIT refused'}`);
          }
          s.engine.push(ev);
          s.cpuUs.push(e.cpuUsPerRequest);
          s.pool.push(valueOf(p, pool));
          s.poolCpuUs.push(pool.cpuUsPerRequest);
          s.rssMiB.push(e.maxRssBytes / (1 << 20));
          s.segsPerCopy.push(e.engine.segmentsPerBatch);
          if (e.engine.notifiesToGuest > 0) s.reqsPerNotify.push(e.requests / e.engine.notifiesToGuest);
          if (ps) {
            s.psync.push(valueOf(p, ps));
            s.vsPsync.push(ev / valueOf(p, ps));
            s.psyncCpuUs.push(ps.cpuUsPerRequest);
          }
          if (ur) {
            s.uring.push(valueOf(p, ur));
            s.vsUring.push(ev / valueOf(p, ur));
            s.poolVsUring.push(valueOf(p, pool) / valueOf(p, ur));
            s.uringCpuUs.push(ur.cpuUsPerRequest);
            if (!v.direct && unitOf(p) === 'MB/s') {
              // Time per byte adds up: fio's, then one copy of it at this round's memcpy speed.
              const base = 1 / (1 / valueOf(p, ur) + 1 / memcpyMBps());
              s.memcpyBase.push(base);
              s.vsMemcpy.push(ev / base);
            }
          }
        }
      }
    }
  } finally {
    for (const f of files.values()) f.remove();
  }
  return rows(vs, patterns, series);
}

/** memcpy speed of this machine now (MB/s): 1 MiB copies out of a 64 MiB source, as big as
 * to miss the CPU caches, as a copy out of the page cache does. */
function memcpyMBps(): number {
  const src = new Uint8Array(64 << 20);
  src.fill(1);
  const dst = new Uint8Array(1 << 20);
  const t = performance.now();
  let bytes = 0;
  for (let pass = 0; pass < 2; pass++)
    for (let at = 0; at < src.length; at += dst.length, bytes += dst.length) dst.set(src.subarray(at, at + dst.length));
  return bytes / 1e6 / ((performance.now() - t) / 1000);
}

function engineRound(
  file: WorkFile, v: Variant, p: Pattern, o: IoBenchOptions, tp: number, uring: boolean,
): EngineRunResult {
  const spec: EngineRunSpec = {
    file: file.path, direct: v.direct, pattern: p, seconds: o.seconds, warmupSeconds: o.engineWarmupSeconds, uring,
  };
  const r = runEngineRound(spec, tp);
  if (r.errors > 0) throw new Error(`engine ${v.name} ${p.name}: ${r.errors} requests answered with an error`);
  return r;
}

function rows(vs: readonly Variant[], patterns: readonly Pattern[], series: Map<string, Series>): Row[] {
  const out: Row[] = [];
  for (const v of vs) {
    for (const p of patterns) {
      const s = series.get(`${v.name}\0${p.name}`);
      if (!s) continue;
      const base = {
        section: v.name,
        name: `${p.name} engine`,
        unit: unitOf(p),
        better: 'higher' as const,
        value: summarize(s.engine),
        cpuUsPerRequest: summarize(s.cpuUs),
        rssMiB: summarize(s.rssMiB),
        threadpool: s.threadpool,
        batching: { segmentsPerCopy: summarize(s.segsPerCopy), requestsPerNotify: summarize(s.reqsPerNotify) },
      };
      const goal = p.target?.[v.direct ? 'direct' : 'buffered'];
      const judged = (ratio: Summary): string | undefined =>
        v.targets && goal !== undefined ? `>= ${goal}x: ${ratio.median >= goal ? 'met' : 'MISSED'}` : undefined;
      const memcpyJudged = s.vsMemcpy.length > 0;
      if (s.uring.length > 0) {
        const ru = summarize(s.vsUring);
        out.push({
          ...base,
          baseline: { name: `fio io_uring iodepth=${p.depth}`, value: summarize(s.uring) },
          baselineCpuUsPerRequest: summarize(s.uringCpuUs),
          ratio: ru,
          target: memcpyJudged ? undefined : judged(ru),
        });
      }
      if (memcpyJudged) {
        const rm = summarize(s.vsMemcpy);
        const memcpyBase = { name: 'fio io_uring + one memcpy', value: summarize(s.memcpyBase) };
        out.push({ ...base, baseline: memcpyBase, ratio: rm, target: judged(rm) });
      }
      if (s.psync.length > 0) {
        out.push({
          ...base,
          baseline: { name: `fio psync numjobs=${p.depth}`, value: summarize(s.psync) },
          baselineCpuUsPerRequest: summarize(s.psyncCpuUs),
          ratio: summarize(s.vsPsync),
          target: 'reference',
        });
      }
      // Before io_uring: the thread-pool path (what a kernel that refuses io_uring gets).
      const poolRow: Row = {
        ...base, name: `${p.name} engine, thread pool`, value: summarize(s.pool), cpuUsPerRequest: summarize(s.poolCpuUs),
        batching: undefined, rssMiB: undefined,
      };
      if (s.uring.length > 0) {
        out.push({
          ...poolRow, baseline: { name: `fio io_uring iodepth=${p.depth}`, value: summarize(s.uring) },
          baselineCpuUsPerRequest: summarize(s.uringCpuUs), ratio: summarize(s.poolVsUring), target: 'fallback',
        });
      }
      else out.push(poolRow);
      if (s.uring.length === 0 && s.psync.length === 0) out.push(base);
    }
  }
  return out;
}
