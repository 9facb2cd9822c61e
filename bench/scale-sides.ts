// `npm run bench:scale -- --sides A,B --rounds R`: the same scale measurement for several
// worker settings (or executables), in alternating rounds within one run (A B, then B A, ...),
// so that load changes on a shared host fall on every side alike. Each round fits each side's
// slope over the disk counts; the table gives each side's median and spread over the rounds
// and the ratio of each side to the first, per round, as median and spread.
//   A side: NAME=WORKER-ARGS (e.g. hosts=--isolation=identity), or NAME@EXE for a build.
import { progress } from './report';
import { type ScaleFit, type ScaleOptions, fitScale, measureScale } from './scale';
import { type Summary, spreadPct, summarize } from './stats';

export interface Side {
  readonly name: string;
  readonly workerArgs: readonly string[];
  readonly exe?: string;
}

export function parseSides(list: string): Side[] {
  const sides = list.split(',').map((s) => s.trim()).filter(Boolean).map((s): Side => {
    const at = s.indexOf('@');
    const eq = s.indexOf('=');
    if (at > 0 && (eq < 0 || at < eq)) return { name: s.slice(0, at), workerArgs: [], exe: s.slice(at + 1) };
    if (eq > 0) return { name: s.slice(0, eq), workerArgs: s.slice(eq + 1).split(/\s+/).filter(Boolean) };
    return { name: s, workerArgs: [] };
  });
  if (sides.length < 2) throw new Error(`--sides: two or more NAME=ARGS or NAME@EXE, got ${list}`);
  return sides;
}

type Measure = (f: ScaleFit) => number;
const MEASURES: ReadonlyArray<[string, string, Measure]> = [
  ['PSS per disk', 'MiB', (f) => f.pssMiB.slope],
  ['page tables + stacks per disk', 'MiB', (f) => f.kernelMiB.slope],
  ['idle CPU per disk', '% CPU', (f) => f.idleCpuPct.slope],
  ['idle wakeups per disk', '/s', (f) => f.wakeupsPerS.slope],
];

export async function benchScaleSides(o: ScaleOptions, sides: readonly Side[], rounds: number): Promise<string> {
  const fits = new Map<string, ScaleFit[]>(sides.map((s) => [s.name, []]));
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) {
      const points = [];
      for (const n of o.counts) {
        progress(`scale sides: round ${r + 1}/${rounds}, ${side.name}, N = ${n}`);
        points.push(await measureScale(n, { ...o, exe: side.exe ?? o.exe, workerArgs: [...(o.workerArgs ?? []),
          ...side.workerArgs] }));
      }
      fits.get(side.name)!.push(fitScale(points));
    }
  }
  const f2 = (n: number) => (Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(3));
  const cell = (s: Summary) => `${f2(s.median)} (±${Number.isFinite(spreadPct(s)) ? spreadPct(s).toFixed(0) : '-'} %)`;
  const base = sides[0]!;
  const lines = [`slopes over N = ${o.counts.join(',')}, ${rounds} alternating rounds: median (spread p10-p90)`];
  for (const [what, unit, m] of MEASURES) {
    const per = sides.map((s) => `${s.name} ${cell(summarize(fits.get(s.name)!.map(m)))}`);
    const ratios = sides.slice(1).map((s) => {
      const r = summarize(fits.get(s.name)!.map((f, i) => m(f) / m(fits.get(base.name)![i]!)));
      return `${s.name}/${base.name} ${cell(r)}`;
    });
    lines.push(`${what} (${unit}): ${per.join(', ')}; ratio ${ratios.join(', ')}`);
  }
  return `${lines.join('\n')}\n`;
}
