// `npm run bench` arguments: --help and any unknown flag stop before a benchmark starts (a
// typo must not cost the 6-minute default run).
import minimist from 'minimist';

export const BENCH_USAGE = `usage: npm run bench -- [OPTIONS]

Every benchmark of the project, each against a baseline measured in the same run; progress on
stderr, a table (or --json) on stdout. Without options: about 6 minutes on 2 busy CPUs.

  --quick            about a minute: 2 short rounds of the target patterns, disk only
  --only A,B         sections: startup, control, io, threadpool, storm, scale (scale only by name)
  --counts 1,4,16    scale: device counts
  --json             machine-readable rows
  --rounds N         rounds of every section
  --seconds S        seconds per measurement (io, threadpool, storm)
  --dir DIR          directory for the disk test file (default /var/tmp)
  --threadpool N     libuv threads for the io section
  --no-shm           skip the /dev/shm variant
  --patterns A,B     io patterns by name
  --help             this text
`;

const BOOLEAN = ['json', 'quick', 'shm', 'help'];
const STRING = ['only', 'dir', 'patterns', 'counts', 'rounds', 'seconds', 'threadpool'];

export type BenchArgs = minimist.ParsedArgs;

/** The parsed arguments, or the exit status when the run must not start (after printing why). */
export function parseBenchArgs(args: string[], out: (s: string) => void, err: (s: string) => void): BenchArgs | number {
  const unknown: string[] = [];
  const argv = minimist(args, {
    boolean: BOOLEAN,
    string: STRING,
    alias: { h: 'help' },
    default: { shm: true, dir: '/var/tmp' },
    unknown: (a) => { unknown.push(a); return false; },
  });
  if (argv.help) { out(BENCH_USAGE); return 0; }
  if (unknown.length) {
    const what = unknown[0]!.startsWith('-') ? 'option' : 'argument';
    err(`bench: unknown ${what} ${unknown[0]}; nothing was run (npm run bench -- --help)\n`);
    return 2;
  }
  return argv;
}
