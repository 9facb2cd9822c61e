#!/usr/bin/env node
// Driver of the Xen end-to-end test: for each Xen version selected, boots Xen
// + a PV dom0 under QEMU (TCG), reads the serial console, timestamps and saves
// it, follows the XENTEST markers dom0 prints for the stages of stages.txt it
// chose (groups, Xen versions, requirements), and exits 0 only when every
// chosen stage passed explicitly. `--prepare` runs prepare.sh first.
import { spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { bootOnce } from './lib/boot.mjs';
import { killAllQemu, qemuArgs } from './lib/qemu.mjs';
import { perfAnchor, summary, timingTable } from './lib/report.mjs';
import { bootStages, plan, readStageFile, verdict, XEN_VERSIONS } from './lib/stages.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../..');

const HELP = `usage: node test/xen/run.mjs [options]

  --groups A,B|all       stage groups to run (default core); see the group lines of stages.txt
  --xen V,W|all          Xen versions to boot, one boot each, in this order (default 4.17;
                         known: ${XEN_VERSIONS.join(', ')})
  --only A,B             run only these stages (and the stages they require), on the
                         selected Xen versions they run on; --groups does not matter then
  --select NAME          run a named selection of stages.txt (e.g. ci: what CI runs on each
                         Xen version); --xen narrows it (default: all its versions)
  --list                 print the plan (what each boot runs, what is not run and why), exit
  --prepare              run prepare.sh --xen ... first (downloads and images)
  --timeout SEC          wall-clock limit of each boot (default 300 + the budgets of its groups)
  --allow-skip           exit 0 even if stages were skipped (e.g. no dist/afsfile) or a
                         selected Xen version is not prepared
  --boot-limit SEC       dom0 must reach /init within this (240), else it is a hang
  --boot-retries N       boot again after such a hang or a panic before /init, N times (1)
  --strict               TODO stages count as failures
  --json                 print the JSON summary on stdout (the report goes to stderr)
  -v, --verbose          echo every console line, not only the markers
  --dom0-mem MIB         dom0's memory (1024); QEMU gets it plus 1536 MiB for guests
  --guest-mem MIB        default guest memory (256)
  --guest-boot-timeout SEC  dom0 fails a guest whose blkfront is not up by then (120)
  --connect-timeout SEC  dom0 fails a disk not connected this long after blkfront is (30)
  --guest-timeout SEC    dom0 fails a guest still running after this (180)
  --seq-mb N --buf-mb N --rand-mb N --rand-ops N --rand-seconds N --loop-mb N (case 5's sequential MiB)
                         guest workload (32, 8, 4, 1024, 10): see tools/xtio.c
  --perf-rounds N --perf-seconds N --perf-variant-rounds N (0: no 256-segment guest)
  --perf-sides A,B       the perf-ab stage (5, 4, as rounds; blkback,afsfile): sides are
                         blkback, afsfile, afsfile-pool (AFSFILE_IO=threadpool),
                         afsfile-uring-reads (AFSFILE_IO=uring-reads), afsfile-inline
                         (AFSFILE_IO=inline-writes), afsfile-ring (AFSFILE_IO=uring),
                         afsfile-copy (AFSFILE_KEEP=copy), afsfile-pgnt (AFSFILE_PERSISTENT=1)
  --perf-profile         perf-ab's afsfile sides with a CPU profile and the timing split
                         (AFSFILE_CPU_PROFILE, DEBUG=afsfile:timing): summaries in its output
  --build DIR            this clone's prepared images (default test/xen/.build, or XEN_TEST_BUILD)
  --artifacts DIR        where serial-XEN.log and result.json go (default test/xen/artifacts)
`;

const { values: opt } = parseArgs({
  options: {
    groups: { type: 'string', default: 'core' },
    xen: { type: 'string' },
    only: { type: 'string' },
    select: { type: 'string' },
    list: { type: 'boolean', default: false },
    prepare: { type: 'boolean', default: false },
    timeout: { type: 'string' },
    'allow-skip': { type: 'boolean', default: false },
    'boot-retries': { type: 'string', default: '1' },
    'boot-limit': { type: 'string', default: '240' },
    strict: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    verbose: { type: 'boolean', short: 'v', default: false },
    'dom0-mem': { type: 'string', default: '1024' },
    'guest-mem': { type: 'string' },
    'guest-boot-timeout': { type: 'string' },
    'connect-timeout': { type: 'string' },
    'guest-timeout': { type: 'string' },
    'seq-mb': { type: 'string' },
    'loop-mb': { type: 'string' },
    'buf-mb': { type: 'string' },
    'rand-mb': { type: 'string' },
    'rand-ops': { type: 'string' },
    'rand-seconds': { type: 'string' },
    'perf-rounds': { type: 'string' },
    'perf-seconds': { type: 'string' },
    'perf-variant-rounds': { type: 'string' },
    'perf-sides': { type: 'string' },
    'perf-profile': { type: 'boolean', default: false },
    build: { type: 'string', default: process.env.XEN_TEST_BUILD ?? join(HERE, '.build') },
    cache: { type: 'string' }, // renamed: refused with a pointer
    artifacts: { type: 'string', default: join(HERE, 'artifacts') },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) { process.stdout.write(HELP); process.exit(0); }
if (opt.cache != null) {
  process.stderr.write('run.mjs: --cache is gone: this clone\'s images are in --build DIR '
    + '(default test/xen/.build/XEN), '
    + 'downloads and platforms in XEN_TEST_CACHE (default ~/.cache/afsfile-xen-test); see test/xen/README.md\n');
  process.exit(2);
}

const out = opt.json ? process.stderr : process.stdout; // human-readable output
const say = (s) => out.write(`${s}\n`);
const die = (s) => { process.stderr.write(`run.mjs: ${s}\n`); process.exit(2); };
const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);

// ---- the plan: which boot runs which stages --------------------------------------
const stageFile = join(HERE, 'stages.txt');
const file = readStageFile(stageFile);
let thePlan;
try {
  thePlan = plan(file, {
    groups: list(opt.groups),
    xen: list(opt.xen ?? (opt.select ? 'all' : '4.17')),
    only: opt.only ? list(opt.only) : null,
    select: opt.select ?? null,
  });
} catch (e) { die(e.message); }
const { boots, notRun, budget } = thePlan;
for (const g of thePlan.emptyGroups) say(`xen test: group ${g} has no stages yet`);
for (const v of [...new Set(notRun.map((n) => n.xen))]) { // one line per version: the stages are in result.json
  const ns = notRun.filter((n) => n.xen === v);
  say(`xen test: not run on Xen ${v} (${ns[0].reason}): ${ns.map((n) => n.name).join(' ')}`);
}
for (const [v, names] of Object.entries(boots)) {
  say(`xen test: Xen ${v} boot runs ${names.join(' ')} (budget ${300 + budget[v]}s)`);
}
if (opt.list) process.exit(0);
if (!Object.keys(boots).length) die('nothing selected to run');

const numberOpt = (k) => {
  if (opt[k] == null) return null;
  if (!/^\d+$/.test(opt[k])) die(`--${k} needs a whole number`);
  return Number(opt[k]);
};
const dom0Mem = numberOpt('dom0-mem');
const commonArgs = [];
for (const [k, name] of [
  ['guest-boot-timeout', 'boot_timeout'], ['connect-timeout', 'connect_timeout'], ['guest-timeout', 'guest_timeout'],
  ['seq-mb', 'seq_mb'], ['loop-mb', 'loop_mb'], ['buf-mb', 'buf_mb'], ['rand-mb', 'rand_mb'], ['rand-ops', 'rand_ops'],
  ['rand-seconds', 'rand_seconds'], ['perf-rounds', 'perf_rounds'], ['perf-seconds', 'perf_seconds'],
  ['perf-variant-rounds', 'perf_variant_rounds'],
  ['guest-mem', 'guest_mem']]) {
  const v = numberOpt(k);
  if (v != null) commonArgs.push(`xentest.${name}=${v}`);
}
if (opt['perf-sides'] != null) {
  const sides = list(opt['perf-sides']);
  const known = ['blkback', 'afsfile', 'afsfile-pool', 'afsfile-uring-reads', 'afsfile-inline', 'afsfile-ring', 'afsfile-copy', 'afsfile-pgnt'];
  const bad = sides.filter((x) => !known.includes(x));
  if (bad.length || sides.length < 2) die(`--perf-sides: two or more of ${known.join(', ')}`);
  commonArgs.push(`xentest.perf_sides=${sides.join(',')}`);
}
if (opt['perf-profile']) commonArgs.push('xentest.perf_profile=1');
const timeoutOverride = numberOpt('timeout');

if (opt.prepare) {
  const r = spawnSync('bash', [join(HERE, 'prepare.sh'), '--xen', Object.keys(boots).join(',')], {
    stdio: ['ignore', out, 'inherit'],
  });
  if (r.status !== 0) die(`prepare.sh failed (status ${r.status})`);
}

// ---- run --------------------------------------------------------------------
mkdirSync(opt.artifacts, { recursive: true });
process.on('exit', killAllQemu);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { killAllQemu(); process.exit(130); });
}
const ts = (t) => `[${t.toFixed(1).padStart(6)}]`;
const loadNow = () => loadavg().map((x) => Number(x.toFixed(2)));
const loadAtStart = loadNow();
const afsfileBin = process.env.AFSFILE_BIN ?? join(REPO, 'dist/afsfile');

const runs = []; // one per Xen version: { xen, state, result, perf, serial, args } or { xen, missing }
for (const [xen, names] of Object.entries(boots)) {
  const bootDir = join(opt.build, xen, 'boot');
  const hv = join(bootDir, 'xen.elf');
  const kernel = join(bootDir, 'vmlinuz');
  const initrd = [join(bootDir, 'dom0.cpio'), join(bootDir, 'dom0.cpio.gz')].find(existsSync);
  if (!existsSync(hv) || !existsSync(kernel) || !initrd) {
    const why = `Xen ${xen} is not prepared (${bootDir}): `
      + `run bash test/xen/prepare.sh --xen ${xen}, or run.mjs --prepare`;
    say(`xen test: ${why}`);
    runs.push({ xen, missing: why, names });
    continue;
  }
  if (existsSync(afsfileBin) && statSync(afsfileBin).mtimeMs > statSync(initrd).mtimeMs) {
    say(`warning: ${afsfileBin} is newer than the Xen ${xen} dom0 image; run prepare.sh (or --prepare) to include it`);
  }
  const dom0Args = [`xentest.only=${names.join(',')}`, ...commonArgs];
  const args = qemuArgs({ xen: hv, kernel, initrd, dom0Args, dom0MemMiB: dom0Mem });
  const serialPath = join(opt.artifacts, `serial-${xen}.log`);
  const serial = createWriteStream(serialPath);
  serial.write(`# qemu-system-x86_64 ${args.map((a) => (/[\s,]/.test(a) ? `'${a}'` : a)).join(' ')}\n`);
  const timeoutS = timeoutOverride ?? 300 + budget[xen];

  // A dom0 that hangs before /init (seen a few times under TCG on a loaded host,
  // silent after "sched_clock: Marking stable") is retried: it happens before any
  // code under test runs. Every attempt stays in the serial log.
  const retries = Number(opt['boot-retries']);
  const started = Date.now();
  let state;
  for (let attempt = 1; ; attempt++) {
    const left = timeoutS - (Date.now() - started) / 1000;
    say(`xen test: booting Xen ${xen} + dom0 (${initrd}), attempt ${attempt}, `
      + `serial log ${serialPath}, ${Math.round(left)}s left`);
    serial.write(`# attempt ${attempt}\n`);
    ({ state } = await bootOnce({
      args, stages: bootStages(file, xen, names), timeoutS: left, bootTimeoutS: Number(opt['boot-limit']),
      log: (line, t) => serial.write(`${ts(t)} ${line}\n`), say, verbose: opt.verbose,
    }));
    state.attempts = attempt;
    // A dom0 kernel panic before /init (seen once on the Debian 13 kernel under TCG, 3 s in)
    // is the same case: nothing under test has run yet.
    const beforeInit = state.bootHung || (state.fatal != null && state.bootAt == null);
    if (!beforeInit || attempt > retries || left < 300) break;
    say(`xen test: dom0 ${state.bootHung ? 'hung' : 'failed'} before /init; retrying (${attempt}/${retries})`);
  }
  await new Promise((r) => serial.end(r));
  const result = verdict(state, { allowSkip: opt['allow-skip'], strict: opt.strict, prefix: `Xen ${xen}: ` });
  // The anchor: blkback and afsfile in the same boot (on 4.20 the vbd3 group has its own baseline).
  const anchor = names.includes('vbd3-rw') && !names.includes('afsfile-rw') ? 'vbd3-rw' : 'afsfile-rw';
  const base = names.includes('baseline-blkback') ? 'baseline-blkback' : 'vbd3-baseline';
  runs.push({ xen, state, result, perf: perfAnchor(state, base, anchor), serial: serialPath, args, timeoutS });
}

// ---- report -----------------------------------------------------------------
const problems = [];
for (const r of runs) {
  say('');
  if (r.missing) {
    if (!opt['allow-skip']) problems.push(`Xen ${r.xen}: not prepared (${r.names.length} stages not run)`);
    continue;
  }
  say(`stage timings, Xen ${r.xen}`);
  for (const l of timingTable(r.state)) say(`  ${l}`);
  say('');
  say(`performance anchor, Xen ${r.xen}`);
  for (const l of r.perf.lines) say(`  ${l}`);
  const ratioKeys = Object.keys(r.perf.ratios);
  if (ratioKeys.length) say(`  afsfile/blkback: ${ratioKeys.map((k) => `${k} ${r.perf.ratios[k]}`).join(', ')}`);
  problems.push(...r.result.problems);
}
say('');

// TCG speed follows the host's load: other work on the 2 cores slows every number.
const load = { at_start: loadAtStart, at_end: loadNow() };
say(`host load average (1, 5, 15 min): start ${load.at_start.join(' ')}, end ${load.at_end.join(' ')}`);
if (Math.max(load.at_start[0], load.at_end[0]) > 2.5) {
  say('  the host was busy: absolute numbers and timings are not comparable across runs '
    + '(the afsfile/blkback ratio within one run is what counts)');
}
const ok = problems.length === 0;
const json = summary(runs, { ok, problems, notRun, groups: thePlan.groups, xen: thePlan.xen, host_loadavg: load });
writeFileSync(join(opt.artifacts, 'result.json'), `${JSON.stringify(json, null, 2)}\n`);
if (opt.json) process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);

const all = json.stages;
const count = (st) => all.filter((s) => s.status === st).length;
if (!ok) {
  for (const r of runs.filter((x) => !x.missing && !x.result.ok)) {
    say(`last lines of the serial console, Xen ${r.xen} (${r.serial}):`);
    const lines = readFileSync(r.serial, 'utf8').trimEnd().split('\n');
    for (const l of lines.slice(-60)) say(`  ${l}`);
    say('');
  }
  say(`xen test FAILED: ${problems.join('; ')}`);
} else {
  say(`xen test passed (${count('skip')} skipped, ${count('todo')} todo, ${notRun.length} not run); `
    + `serial logs in ${opt.artifacts}`);
}
// The plain closing line CI reads: stages passed / failed (incl. not reported) / skipped.
const failed = count('fail') + count('pending') + count('running');
say(`${count('pass')} passed, ${failed} failed, ${count('skip') + count('not-prepared')} skipped`);
process.exit(ok ? 0 : 1);
