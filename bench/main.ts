// `npm run bench`: every benchmark of the project, each against a baseline measured in the
// same run. Progress on stderr; a table (or --json) on stdout.
//
//   --quick            about a minute: 2 short rounds of the target patterns, disk only
//   --only a,b         sections: startup, control (claim latency, hotplug add), io, threadpool,
//                      storm (a guest notifying in a loop beside a neighbour: bench/storm.ts),
//                      scale (only by name; --counts 1,4,16: see bench/scale-main.ts)
//   --json             machine-readable rows
//   --rounds N         rounds of every section (startup: default 20, quick 5; threadpool: at most 2)
//   --seconds S --dir DIR --threadpool N --no-shm --patterns 'name,...'   (io, threadpool)
import { parseBenchArgs } from './args';
import * as os from 'node:os';
import { engineNode } from './engine';
import { fioVersion } from './fio';
import { type IoBenchMeta, benchIo } from './io';
import { PATTERNS, type Pattern } from './patterns';
import { type Row, progress, table } from './report';
import { benchControlPath } from './hotplug';
import { benchStartup } from './startup';
import { benchStorm } from './storm';
import { benchThreadpool } from './threadpool';
import { benchScale, scaleTable } from './scale';
import { scaleCounts } from './scale-main';

export const SECTIONS = ['startup', 'control', 'io', 'threadpool', 'storm', 'scale'] as const;

async function main(): Promise<void> {
  const parsed = parseBenchArgs(process.argv.slice(2), (t) => process.stdout.write(t), (t) => process.stderr.write(t));
  if (typeof parsed === 'number') process.exit(parsed);
  const argv = parsed;
  const quick = argv.quick === true;
  const only = typeof argv.only === 'string' ? argv.only.split(',') : undefined;
  for (const s of only ?? []) if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`--only: unknown section ${s} (have ${SECTIONS.join(', ')})`);
  const want = (name: string) => !only || only.includes(name);
  const num = (name: string, dflt: number): number => {
    const v = argv[name] === undefined ? dflt : Number(argv[name]);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
    return v;
  };
  // Default (about 6 minutes on 2 busy CPUs): 3 rounds, every pattern, disk and /dev/shm,
  // the threadpool section. Quick (about 1 minute): 2 short rounds of the target patterns on
  // the disk file only.
  const io = {
    rounds: Math.floor(num('rounds', quick ? 2 : 3)),
    seconds: num('seconds', quick ? 0.15 : 0.4),
    warmupSeconds: quick ? 0.1 : 0.2,
    engineWarmupSeconds: quick ? 0.3 : 0.5,
    fileSize: (quick ? 128 : 256) << 20,
    diskDir: String(argv.dir),
    shm: argv.shm !== false && !quick,
    threadpool: argv.threadpool === undefined ? undefined : Math.floor(num('threadpool', 4)),
    patterns: selectPatterns(argv.patterns as string | undefined) ?? (quick ? PATTERNS.filter((p) => p.target !== undefined) : undefined),
  };
  const started = Date.now();
  const rows: Row[] = [];
  const meta: Partial<IoBenchMeta> = { fio: fioVersion() };
  if (want('startup')) rows.push(...benchStartup(argv.rounds === undefined ? (quick ? 5 : 20) : io.rounds));
  if (want('control')) rows.push(...(await benchControlPath(quick ? 5 : 20)));
  if (want('io')) rows.push(...benchIo(io, meta));
  // Not in --quick unless asked for by name.
  if (only ? want('threadpool') : !quick) rows.push(...benchThreadpool({ ...io, rounds: Math.min(io.rounds, 2) }));
  if (want('storm')) {
    const storm = { rounds: Math.floor(num('rounds', quick ? 2 : 4)), seconds: num('seconds', quick ? 1 : 2) };
    rows.push(...(await benchStorm(storm)));
  }
  // Only by name: it starts up to hundreds of processes.
  if (only?.includes('scale')) {
    const s = await benchScale({ counts: scaleCounts(argv.counts ?? (quick ? '1,4,16' : undefined)), settleSeconds: 12, idleSeconds: quick ? 5 : 10, burstMiB: 0 });
    rows.push(...s.rows);
    if (!argv.json) process.stderr.write(scaleTable(s.points, s.fit));
  }
  const elapsed = (Date.now() - started) / 1000;
  progress(`done in ${elapsed.toFixed(0)} s`);
  const machine = { cpus: os.cpus().length, load: os.loadavg(), node: process.version, engineNode: engineNode(), fio: meta.fio, ioUring: meta.ioUring };
  if (argv.json) process.stdout.write(`${JSON.stringify({ machine, options: { quick, ...io }, elapsedSeconds: elapsed, rows }, null, 2)}\n`);
  else {
    process.stdout.write(table(rows));
    process.stdout.write(`\n${machine.cpus} CPUs, load ${machine.load.map((l) => l.toFixed(1)).join(' ')}; ${meta.fio ?? 'no fio'}${meta.ioUring === false ? ' (no io_uring)' : ''}; ` +
      `${io.rounds} rounds of ${io.seconds} s (warm-up: fio ${io.warmupSeconds} s, engine ${io.engineWarmupSeconds} s); ratios are per round (engine / fio of the same round); ${elapsed.toFixed(0)} s in all\n`);
  }
}

/** --patterns: comma-separated pattern names (exact, as in the table). */
function selectPatterns(list: string | undefined): readonly Pattern[] | undefined {
  if (list === undefined) return undefined;
  const names = list.split(',').map((n) => n.trim());
  for (const n of names) if (!PATTERNS.some((p) => p.name === n)) throw new Error(`--patterns: unknown pattern ${JSON.stringify(n)} (have ${PATTERNS.map((p) => p.name).join(', ')})`);
  return PATTERNS.filter((p) => names.includes(p.name));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
