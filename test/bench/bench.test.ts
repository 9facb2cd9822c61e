// `npm run bench` in miniature (the full benchmark is not run in CI): the startup section and
// one engine pattern, as --json; checks the shape and that every figure is a positive number.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = path.resolve(__dirname, '../../..');
const MAIN = path.join(ROOT, 'build/bench/main.js');

interface Summary { n: number; median: number; p10: number; p90: number; min: number; max: number }
interface Row {
  section: string; name: string; unit: string; better: string; value: Summary;
  baseline?: { name: string; value: Summary }; ratio?: Summary; cpuUsPerRequest?: Summary; baselineCpuUsPerRequest?: Summary; rssMiB?: Summary; threadpool?: number;
}

function bench(args: string[]): { rows: Row[]; machine: { cpus: number }; elapsedSeconds: number } {
  const r = spawnSync(process.execPath, [MAIN, '--json', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { rows: Row[]; machine: { cpus: number }; elapsedSeconds: number };
}

function positive(s: Summary | undefined, what: string): void {
  assert.ok(s, `${what} present`);
  for (const k of ['median', 'p10', 'p90', 'min', 'max'] as const) assert.ok(Number.isFinite(s![k]) && s![k] > 0, `${what}.${k} = ${s![k]}`);
  assert.ok(s!.n >= 1 && s!.p10 <= s!.median && s!.median <= s!.p90, `${what} ordered`);
}

test('--quick --only startup --json: the executable against node -e 0, positive times and ratio', () => {
  const out = bench(['--quick', '--only', 'startup', '--rounds', '3']);
  assert.ok(out.machine.cpus > 0);
  assert.is(out.rows.length, 1);
  const row = out.rows[0]!;
  assert.is(row.section, 'startup');
  assert.is(row.unit, 'ms');
  assert.is(row.value.n, 3);
  positive(row.value, 'value');
  positive(row.baseline?.value, 'baseline');
  positive(row.ratio, 'ratio');
});

test('--only io, one pattern, one round: engine rows (io_uring and thread pool) with IOPS, CPU per request and RSS (fio rows when installed)', () => {
  const out = bench(['--quick', '--only', 'io', '--patterns', '4k randread qd1', '--rounds', '1', '--seconds', '0.1', '--no-shm']);
  const sections = [...new Set(out.rows.map((r) => r.section))];
  assert.equal(sections, ['io disk buffered', 'io disk direct']);
  for (const section of sections) {
    const names = new Set(out.rows.filter((r) => r.section === section).map((r) => r.name));
    assert.equal([...names].sort(), ['4k randread qd1 engine', '4k randread qd1 engine, thread pool'], section);
  }
  for (const row of out.rows) {
    assert.is(row.unit, 'IOPS');
    positive(row.value, `${row.section} value`);
    positive(row.cpuUsPerRequest, `${row.section} cpu`);
    if (row.name === '4k randread qd1 engine') positive(row.rssMiB, `${row.section} rss`);
    assert.ok(row.threadpool! >= 1);
    if (row.baseline) {
      assert.match(row.baseline.name, /^fio (psync|io_uring)/);
      positive(row.baseline.value, `${row.section} baseline`);
      positive(row.ratio, `${row.section} ratio`);
      // fio's CPU time comes from getrusage at tick resolution: a 0.1 s run may show none.
      const fioCpu = row.baselineCpuUsPerRequest;
      assert.ok(fioCpu && Number.isFinite(fioCpu.median) && fioCpu.median >= 0, `${row.section} fio cpu`);
    }
  }
});

test('--only with an unknown section: exit 1 and a message naming the sections', () => {
  const r = spawnSync(process.execPath, [MAIN, '--only', 'nosuch'], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  assert.is(r.status, 1);
  assert.match(r.stderr, /unknown section nosuch \(have startup, control, io, threadpool, storm, scale\)/);
});

test('--only storm, one short round: the storming device CPU, the neighbour p99 against a sham storm', () => {
  const out = bench(['--only', 'storm', '--rounds', '1', '--seconds', '0.5']);
  const cpu = out.rows.find((r) => r.section === 'storm' && r.unit === '% of a core');
  assert.ok(cpu && Number.isFinite(cpu.value.median) && cpu.value.median >= 0 && cpu.baseline,
    JSON.stringify(out.rows));
  const sent = out.rows.find((r) => r.section === 'storm' && r.name.includes('notifies'));
  positive(sent?.value, 'notifies sent');
  const p99 = out.rows.find((r) => r.section === 'storm' && r.name === 'neighbour p99 latency (4k qd1)');
  positive(p99?.value, 'neighbour p99');
  positive(p99?.ratio, 'neighbour p99 ratio');
  assert.match(p99!.baseline!.name, /sham/);
});

test('--only scale --counts 1: one disk attached and measured (PSS per disk, idle wakeups)', () => {
  const out = bench(['--quick', '--only', 'scale', '--counts', '1']);
  const pss = out.rows.find((r) => r.name === 'N=1: PSS per disk');
  assert.ok(pss && pss.section === 'scale' && pss.unit === 'MiB', JSON.stringify(out.rows));
  positive(pss.value, 'PSS per disk');
  // A device process is a whole Node: at least a few MiB, and never the guest's memory.
  assert.ok(pss.value.median > 2 && pss.value.median < 200, `PSS per disk ${pss.value.median} MiB`);
  const wk = out.rows.find((r) => r.name === 'N=1: idle wakeups');
  // The supervisor, one idle device and the spare: no per-second timers left (there were ~5
  // wakeups/s per device, plus the status file rewrite). Under a loaded 2-core host the kernel's
  // own accounting adds more: a preempted thread starts a new timeslice, which schedstat counts
  // like a wake-up (2.6-2.8/s, once 5/s, measured with other test suites and QEMU running). The
  // old timers gave 10/s or more for the supervisor, one device and the spare.
  const idle = wk?.value.median ?? NaN;
  assert.ok(Number.isFinite(idle) && idle >= 0 && idle < 8, `idle wakeups ${idle}/s`);
});

test.run();
