#!/usr/bin/env node
// Driver of the Xen end-to-end test: boots Xen 4.17 + a PV dom0 under QEMU (TCG),
// reads the serial console, timestamps and saves it, follows the XENTEST markers
// dom0 prints for each stage of stages.txt, and exits 0 only when every expected
// stage passed explicitly. Run `bash test/xen/prepare.sh` first.
import { createWriteStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { qemuArgs, startQemu } from './lib/qemu.mjs';
import { perfAnchor, summary, timingTable } from './lib/report.mjs';
import { applyMarker, parseMarker, readStages, verdict } from './lib/stages.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../..');

const HELP = `usage: node test/xen/run.mjs [options]

  --timeout SEC          wall-clock limit for the whole run (default 720)
  --allow-skip           exit 0 even if stages were skipped (e.g. no dist/afsfile)
  --strict               TODO stages count as failures
  --only A,B             run only these stages (and the stages they require)
  --json                 print the JSON summary on stdout (the report goes to stderr)
  -v, --verbose          echo every console line, not only the markers
  --connect-timeout SEC  dom0 fails a guest whose disk is not connected by then (60)
  --guest-timeout SEC    dom0 fails a guest still running after this (180)
  --seq-mb N --buf-mb N --rand-mb N --rand-ops N   guest workload size (32, 8, 4, 1024)
  --cache DIR            prepared images (default test/xen/.cache)
  --artifacts DIR        where serial.log and result.json go (default test/xen/artifacts)
`;

const { values: opt } = parseArgs({
  options: {
    timeout: { type: 'string', default: '720' },
    'allow-skip': { type: 'boolean', default: false },
    strict: { type: 'boolean', default: false },
    only: { type: 'string' },
    json: { type: 'boolean', default: false },
    verbose: { type: 'boolean', short: 'v', default: false },
    'connect-timeout': { type: 'string' },
    'guest-timeout': { type: 'string' },
    'seq-mb': { type: 'string' },
    'buf-mb': { type: 'string' },
    'rand-mb': { type: 'string' },
    'rand-ops': { type: 'string' },
    cache: { type: 'string', default: join(HERE, '.cache') },
    artifacts: { type: 'string', default: join(HERE, 'artifacts') },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) { process.stdout.write(HELP); process.exit(0); }

const out = opt.json ? process.stderr : process.stdout; // human-readable output
const say = (s) => out.write(`${s}\n`);
const die = (s) => { process.stderr.write(`run.mjs: ${s}\n`); process.exit(2); };

// ---- inputs -----------------------------------------------------------------
const boot = join(opt.cache, 'boot');
const xen = join(boot, 'xen.elf');
const kernel = join(boot, 'vmlinuz');
const initrd = [join(boot, 'dom0.cpio'), join(boot, 'dom0.cpio.gz')].find(existsSync);
for (const f of [xen, kernel]) if (!existsSync(f)) die(`${f} is missing: run bash test/xen/prepare.sh`);
if (!initrd) die(`no dom0 initramfs in ${boot}: run bash test/xen/prepare.sh`);
const afsfileBin = process.env.AFSFILE_BIN ?? join(REPO, 'dist/afsfile');
if (existsSync(afsfileBin) && statSync(afsfileBin).mtimeMs > statSync(initrd).mtimeMs) {
  say(`warning: ${afsfileBin} is newer than the dom0 image; run bash test/xen/prepare.sh to include it`);
}

const stages = readStages(join(HERE, 'stages.txt'));
let only = null;
if (opt.only) { // add what the chosen stages require, transitively
  only = opt.only.split(',').map((s) => s.trim()).filter(Boolean);
  for (let i = 0; i < only.length; i++) {
    const st = stages.find((s) => s.name === only[i]);
    if (!st) die(`unknown stage ${only[i]}`);
    if (st.requires && !only.includes(st.requires)) only.push(st.requires);
  }
}

const dom0Args = [];
if (only) dom0Args.push(`xentest.only=${only.join(',')}`);
for (const [k, name] of [['connect-timeout', 'connect_timeout'], ['guest-timeout', 'guest_timeout'],
  ['seq-mb', 'seq_mb'], ['buf-mb', 'buf_mb'], ['rand-mb', 'rand_mb'], ['rand-ops', 'rand_ops']]) {
  if (opt[k] != null) {
    if (!/^\d+$/.test(opt[k])) die(`--${k} needs a whole number`);
    dom0Args.push(`xentest.${name}=${opt[k]}`);
  }
}
const timeoutS = Number(opt.timeout);
if (!(timeoutS > 0)) die('--timeout needs a number of seconds');

// ---- run --------------------------------------------------------------------
mkdirSync(opt.artifacts, { recursive: true });
const serialPath = join(opt.artifacts, 'serial.log');
const serial = createWriteStream(serialPath);
const state = { stages, bootAt: null, doneAt: null, doneInfo: null, fatal: null, unknown: [] };
const ts = (t) => `[${t.toFixed(1).padStart(6)}]`;

const FATAL = [
  [/Kernel panic - not syncing/, 'dom0 kernel panic'],
  [/\(XEN\) Panic on CPU/, 'Xen panic'],
  [/\(XEN\) Hardware Dom0 crashed/, 'dom0 crashed'],
  [/^\[qemu stderr\] .*(error|cannot|failed|Could not)/i, 'QEMU error'],
];

const args = qemuArgs({ xen, kernel, initrd, dom0Args });
const loadAtStart = loadavg().map((x) => Number(x.toFixed(2)));
serial.write(`# qemu-system-x86_64 ${args.map((a) => (/[\s,]/.test(a) ? `'${a}'` : a)).join(' ')}\n`);
say(`xen test: booting Xen + dom0 (${initrd.split('/').pop()}), serial log ${serialPath}, timeout ${timeoutS}s`);

let endTimer = null;
const finishSoon = (ms) => { endTimer ??= setTimeout(() => qemu.kill(), ms); };

const qemu = startQemu(args, (line, t) => {
  serial.write(`${ts(t)} ${line}\n`);
  if (opt.verbose) say(`${ts(t)} ${line}`);
  const m = parseMarker(line);
  if (m) {
    applyMarker(state, m, t);
    if (!opt.verbose && m.kind !== 'METRIC') say(`${ts(t)} ${line.trim()}`);
    if (m.kind === 'DONE') finishSoon(1500);
  } else if (!opt.verbose && /^xentest: /.test(line)) {
    say(`${ts(t)} ${line}`);
  }
  for (const [re, what] of FATAL) {
    if (!state.fatal && re.test(line)) {
      state.fatal = `${what}: ${line.trim()}`;
      say(`${ts(t)} FATAL ${state.fatal}`);
      finishSoon(3000); // keep a few more lines of the crash
    }
  }
});

const cleanup = () => qemu.kill();
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { cleanup(); process.exit(130); });
}

// Host-side watchdog: the wall clock, dom0's boot, and a stage that overruns the
// timeout dom0 should have enforced (a hung dom0).
const watchdog = setInterval(() => {
  const t = qemu.now();
  const running = stages.find((s) => s.status === 'running');
  let why = null;
  if (t > timeoutS) why = `wall-clock timeout after ${timeoutS}s`;
  else if (state.bootAt == null && t > 180) why = 'dom0 did not reach /init within 180s';
  else if (running && t - running.begin > running.timeout + 60) why = `stage ${running.name} hung (over ${running.timeout + 60}s)`;
  if (why && !state.fatal) {
    state.fatal = why;
    say(`${ts(t)} FATAL ${why}`);
    qemu.kill();
  }
}, 1000);

const exit = await qemu.exited;
clearInterval(watchdog);
if (endTimer) clearTimeout(endTimer);
if (exit.error) die(`cannot start QEMU: ${exit.error.message}`);
if (state.doneAt == null && !state.fatal) {
  state.fatal = `QEMU exited before XENTEST DONE (code ${exit.code}, signal ${exit.signal})`;
}
await new Promise((r) => serial.end(r));

// ---- report -----------------------------------------------------------------
const result = verdict(state, { allowSkip: opt['allow-skip'], strict: opt.strict, only });
const perf = perfAnchor(state);
say('');
say('stage timings');
for (const l of timingTable(state)) say(`  ${l}`);
say('');
say('performance anchor');
for (const l of perf.lines) say(`  ${l}`);
const ratioKeys = Object.keys(perf.ratios);
if (ratioKeys.length) say(`  afsfile/blkback: ${ratioKeys.map((k) => `${k} ${perf.ratios[k]}`).join(', ')}`);
say('');

// TCG speed follows the host's load: other work on the 2 cores slows every number.
const load = { at_start: loadAtStart, at_end: loadavg().map((x) => Number(x.toFixed(2))) };
say(`host load average (1, 5, 15 min): start ${load.at_start.join(' ')}, end ${load.at_end.join(' ')}`);
const json = summary(state, result, perf, { serial_log: serialPath, host_loadavg: load, qemu_args: args });
writeFileSync(join(opt.artifacts, 'result.json'), `${JSON.stringify(json, null, 2)}\n`);
if (opt.json) process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);

if (!result.ok) {
  say('last lines of the serial console:');
  const lines = readFileSync(serialPath, 'utf8').trimEnd().split('\n');
  for (const l of lines.slice(-60)) say(`  ${l}`);
  say('');
  say(`xen test FAILED: ${result.problems.join('; ')}`);
}
const count = (st) => stages.filter((s) => s.status === st && (!only || only.includes(s.name))).length;
if (result.ok) say(`xen test passed (${count('skip')} skipped, ${count('todo')} todo); serial log ${serialPath}`);
// The plain closing line CI reads: stages passed / failed (incl. not reported) / skipped.
say(`${count('pass')} passed, ${count('fail') + count('pending') + count('running')} failed, ${count('skip')} skipped`);
process.exit(result.ok ? 0 : 1);
