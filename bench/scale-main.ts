// `npm run bench:scale`: the scale benchmark alone (bench/scale.ts), with its own options.
// Progress on stderr; the table (or --json with every process's numbers) on stdout.
//
//   --counts 1,4,16,32,64   numbers of disks (200 needs ~7 GiB before the memory levers)
//   --settle S              seconds between the I/O and the memory sample (default 12: past
//                           the idle release of the pool and the last periodic fsync)
//   --idle S                the idle window for CPU and wakeups (default 10)
//   --burst-mib M           MiB each disk writes before settling (default 0)
//   --busy N                N disks kept writing while memory is sampled once (default 0)
//   --busy-seconds S        how long before that sample (default 10)
//   --exe PATH              the executable to measure (default dist/afsfile)
//   --worker-args 'ARGS'    more worker options (e.g. --isolation=disk)
//   --sides A,B --rounds R  compare settings or builds in R alternating rounds (scale-sides.ts):
//                           NAME=WORKER-ARGS or NAME@EXE each, e.g.
//                           hosts=--isolation=identity,procs=--isolation=disk
//   --json
import minimist from 'minimist';
import * as os from 'node:os';
import { progress } from './report';
import { benchScale, scaleTable } from './scale';
import { benchScaleSides, parseSides } from './scale-sides';

export function scaleCounts(list: unknown): number[] {
  const counts = String(list ?? '1,4,16,32,64').split(',').map(Number);
  if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 1000)) throw new Error(`--counts: want integers 1..1000, got ${String(list)}`);
  return counts.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const argv = minimist(process.argv.slice(2), {
    boolean: ['json'], string: ['counts', 'exe', 'worker-args', 'sides'],
  });
  const num = (name: string, dflt: number): number => {
    const v = argv[name] === undefined ? dflt : Number(argv[name]);
    if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a number >= 0`);
    return v;
  };
  const o = {
    counts: scaleCounts(argv.counts),
    settleSeconds: num('settle', 12),
    idleSeconds: num('idle', 10) || 1,
    burstMiB: num('burst-mib', 0),
    busy: num('busy', 0),
    busySeconds: num('busy-seconds', 10),
    exe: typeof argv.exe === 'string' ? argv.exe : undefined,
    workerArgs: typeof argv['worker-args'] === 'string' ? argv['worker-args'].split(/\s+/).filter(Boolean) : [],
  };
  const started = Date.now();
  if (typeof argv.sides === 'string') {
    const table = await benchScaleSides(o, parseSides(argv.sides), num('rounds', 3) || 1);
    const load = os.loadavg().map((l) => l.toFixed(1)).join(' ');
    progress(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    process.stdout.write(`${table}${os.cpus().length} CPUs, load ${load}; settle ${o.settleSeconds} s, idle window ` +
      `${o.idleSeconds} s\n`);
    return;
  }
  const r = await benchScale(o);
  const machine = { cpus: os.cpus().length, load: os.loadavg(), memGiB: os.totalmem() / 2 ** 30, node: process.version };
  progress(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (argv.json) process.stdout.write(`${JSON.stringify({ machine, options: o, points: r.points, fit: r.fit }, null, 2)}\n`);
  else process.stdout.write(`${scaleTable(r.points, r.fit)}${machine.cpus} CPUs, load ${machine.load.map((l) => l.toFixed(1)).join(' ')}; settle ${o.settleSeconds} s, idle window ${o.idleSeconds} s, burst ${o.burstMiB} MiB per disk\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
