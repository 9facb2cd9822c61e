// The engine against fio on the same file, side by side. Each round runs, per variant (disk
// buffered, disk O_DIRECT, /dev/shm) and pattern: fio psync, the engine, fio io_uring — the
// engine between its two baselines, the order of the baselines swapped every round — and
// ratios are taken within a round only, so a noisy neighbour hits both sides alike.
import type { EngineRunResult, EngineRunSpec } from './engine-guest';
import { bundleEngineChild, runEngineRound, threadpoolFor } from './engine';
import { type FioEngine, type IoResult, fioVersion, ioUringWorks, runFio } from './fio';
import { PATTERNS, type Pattern, type Variant, unitOf, valueOf, variants } from './patterns';
import { type Row, progress } from './report';
import { summarize } from './stats';
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
          if (!s) series.set(key, (s = { engine: [], psync: [], uring: [], vsPsync: [], vsUring: [], cpuUs: [], rssMiB: [], segsPerCopy: [], reqsPerNotify: [], threadpool: tp }));
          progress(`io: round ${round + 1}/${o.rounds} ${v.name}: ${p.name}`);
          const fio = (engine: FioEngine): IoResult | undefined =>
            meta.fio && (engine === 'psync' || uring)
              ? runFio({ file: file.path, size: file.size, pattern: p, engine, direct: v.direct, seconds: o.seconds, warmupSeconds: o.warmupSeconds })
              : undefined;
          const order: FioEngine[] = round % 2 === 0 ? ['psync', 'io_uring'] : ['io_uring', 'psync'];
          // Each contender starts from the same cache state (buffered: all of the file cached).
          const warm = (): void => { if (!v.direct) file.warm(); };
          warm();
          const before = fio(order[0]!);
          warm();
          const e = engineRound(file, v, p, o, tp);
          warm();
          const after = fio(order[1]!);
          const ps = order[0] === 'psync' ? before : after;
          const ur = order[0] === 'psync' ? after : before;
          const ev = valueOf(p, e);
          const nw = e.nowait;
          if (nw && !p.rw.endsWith('write')) {
            const reads = nw.hits + nw.partial + nw.misses;
            progress(`io:   engine: ${reads ? ((100 * nw.hits) / reads).toFixed(1) : 0}% of ${reads} reads from the page cache inline (${nw.partial} partly)${nw.enabled ? '' : ', RWF_NOWAIT refused'}`);
          }
          s.engine.push(ev);
          s.cpuUs.push(e.cpuUsPerRequest);
          s.rssMiB.push(e.maxRssBytes / (1 << 20));
          s.segsPerCopy.push(e.engine.segmentsPerBatch);
          if (e.engine.notifiesToGuest > 0) s.reqsPerNotify.push(e.requests / e.engine.notifiesToGuest);
          if (ps) {
            s.psync.push(valueOf(p, ps));
            s.vsPsync.push(ev / valueOf(p, ps));
          }
          if (ur) {
            s.uring.push(valueOf(p, ur));
            s.vsUring.push(ev / valueOf(p, ur));
          }
        }
      }
    }
  } finally {
    for (const f of files.values()) f.remove();
  }
  return rows(vs, patterns, series);
}

function engineRound(file: WorkFile, v: Variant, p: Pattern, o: IoBenchOptions, tp: number): EngineRunResult {
  const spec: EngineRunSpec = { file: file.path, direct: v.direct, pattern: p, seconds: o.seconds, warmupSeconds: o.engineWarmupSeconds };
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
      const target = (vsName: 'psync' | 'io_uring', ratio: number | undefined): string | undefined => {
        if (!v.targets) return vsName === 'psync' ? 'reference' : undefined;
        if (ratio === undefined || vsName !== 'psync' || p.target === undefined) return undefined;
        return `>= ${p.target}x: ${ratio >= p.target ? 'met' : 'MISSED'}`;
      };
      if (s.psync.length === 0) {
        out.push(base);
        continue;
      }
      const rp = summarize(s.vsPsync);
      out.push({
        ...base,
        baseline: { name: `fio psync numjobs=${p.depth}`, value: summarize(s.psync) },
        ratio: rp,
        target: target('psync', rp.median),
      });
      if (s.uring.length > 0) {
        const ru = summarize(s.vsUring);
        out.push({
          ...base,
          baseline: { name: `fio io_uring iodepth=${p.depth}`, value: summarize(s.uring) },
          ratio: ru,
          target: target('io_uring', ru.median),
        });
      }
    }
  }
  return out;
}
