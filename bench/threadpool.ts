// How big libuv's thread pool should be: the engine at 4k random read, queue depth 32, with
// UV_THREADPOOL_SIZE 4 (libuv's default), 16 and 32; and Node's pool alone (fs.read kept 32
// deep, no engine) as the ceiling anything built on the pool can reach. Each against fio psync
// with numjobs=32 in the same round, on the disk file, buffered and O_DIRECT.
import type { EngineRunSpec } from './engine-guest';
import { bundleEngineChild, runEngineRound } from './engine';
import { fioVersion, runFio } from './fio';
import type { Pattern } from './patterns';
import { type Row, progress } from './report';
import { summarize } from './stats';
import { makeWorkFile } from './workfile';
import type { IoBenchOptions } from './io';

export type ThreadpoolOptions = Pick<IoBenchOptions, 'rounds' | 'seconds' | 'warmupSeconds' | 'engineWarmupSeconds' | 'fileSize' | 'diskDir'>;

const PATTERN: Pattern = { name: '4k randread qd32', rw: 'randread', bs: 4096, depth: 32, fsync: false };
const SIZES = [4, 16, 32];

interface Case {
  name: string;
  raw: boolean;
  threadpool: number;
  inline?: boolean;
  nowait?: boolean;
}

const CASES: Case[] = [
  ...SIZES.map((tp) => ({ name: `engine, UV_THREADPOOL_SIZE=${tp}`, raw: false, threadpool: tp })),
  // The product without its RWF_NOWAIT step (buffered page-cache hits inline): the pool alone.
  { name: 'engine, pool only (no RWF_NOWAIT), pool 4', raw: false, threadpool: 4, nowait: false },
  { name: 'Node fs.read x32, no engine, pool 4', raw: true, threadpool: 4 },
  { name: 'Node fs.read x32, no engine, pool 32', raw: true, threadpool: 32 },
  // What a pool-free path would reach on page-cache hits (RWF_NOWAIT / io_uring): an experiment.
  { name: 'engine, I/O inline (readSync; experiment)', raw: false, threadpool: 4, inline: true },
];

export function benchThreadpool(o: ThreadpoolOptions): Row[] {
  const hasFio = fioVersion() !== undefined;
  bundleEngineChild();
  const file = makeWorkFile(o.diskDir, o.fileSize);
  const modes = [false, true];
  const samples = new Map<string, { v: number[]; base: number[]; ratio: number[]; cpu: number[]; rss: number[] }>();
  try {
    for (let round = 0; round < o.rounds; round++) {
      for (const direct of modes) {
        progress(`threadpool: round ${round + 1}/${o.rounds} ${direct ? 'O_DIRECT' : 'buffered'}`);
        const fio = () => (hasFio ? runFio({ file: file.path, size: file.size, pattern: PATTERN, engine: 'psync', direct, seconds: o.seconds, warmupSeconds: o.warmupSeconds }).iops : NaN);
        // fio before the first half of the cases and after the second; each case is paired
        // with the nearer baseline.
        const b1 = fio();
        const results: number[][] = [];
        for (const c of CASES) {
          const spec: EngineRunSpec & { raw: boolean } = { raw: c.raw, inline: c.inline === true, nowait: c.nowait !== false, file: file.path, direct, pattern: PATTERN, seconds: o.seconds, warmupSeconds: o.engineWarmupSeconds };
          const r = runEngineRound(spec, c.threadpool);
          if (r.errors) throw new Error(`threadpool ${c.name}: ${r.errors} errors`);
          results.push([r.iops, r.cpuUsPerRequest, r.maxRssBytes / (1 << 20)]);
        }
        const b2 = fio();
        CASES.forEach((c, i) => {
          const key = `${direct}\0${c.name}`;
          let s = samples.get(key);
          if (!s) samples.set(key, (s = { v: [], base: [], ratio: [], cpu: [], rss: [] }));
          const base = i < CASES.length / 2 ? b1 : b2;
          const [iops, cpu, rss] = results[i]!;
          s.v.push(iops!);
          s.cpu.push(cpu!);
          s.rss.push(rss!);
          if (hasFio) {
            s.base.push(base);
            s.ratio.push(iops! / base);
          }
        });
      }
    }
  } finally {
    file.remove();
  }
  const rows: Row[] = [];
  for (const direct of modes) {
    for (const c of CASES) {
      const s = samples.get(`${direct}\0${c.name}`)!;
      rows.push({
        section: `threadpool disk ${direct ? 'direct' : 'buffered'}`,
        name: `${PATTERN.name} ${c.name}`,
        unit: 'IOPS',
        better: 'higher',
        value: summarize(s.v),
        ...(hasFio ? { baseline: { name: 'fio psync numjobs=32', value: summarize(s.base) }, ratio: summarize(s.ratio) } : {}),
        cpuUsPerRequest: summarize(s.cpu),
        rssMiB: summarize(s.rss),
        threadpool: c.threadpool,
      });
    }
  }
  return rows;
}
