#!/usr/bin/env node
// Dev mode of the Xen test: boot Xen + dom0 once and keep it up; run stages on
// request, each time from the working tree as it is then (dom0 copies the stage
// scripts, stages.txt, install.sh and dist/afsfile from the repository, shared
// read-only over 9p), so iterating on one stage costs its own time, not a boot.
//
//   node test/xen/dev.mjs [--xen 4.17] [--groups G | --only A,B] [--runs 'A,B;C;;']
//
// The first request is the plan of --groups/--only (with requirements); then,
// interactively, each line names the stages to run again (empty: the last
// ones again, q: quit). A stage's requirements that already passed in this
// boot are not run again; name afsfile-setup to restart the worker (e.g. after
// `npm run build`, which this runs before every request). --runs gives the
// requests up front (separated by ';', an empty one repeats the last) and
// quits after them: the way to use it from scripts. Run prepare.sh first once.
import { spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killAllQemu, qemuArgs, startQemu } from './lib/qemu.mjs';
import { timingTable } from './lib/report.mjs';
import {
  applyMarker, bootStages, parseMarker, plan, readStageFile, requiredOn, verdict,
} from './lib/stages.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../..');

const { values: opt } = parseArgs({
  options: {
    xen: { type: 'string', default: '4.17' },
    groups: { type: 'string', default: 'core' },
    only: { type: 'string' },
    runs: { type: 'string' },
    'dom0-mem': { type: 'string', default: '1024' },
    'boot-limit': { type: 'string', default: '300' },
    limit: { type: 'string', default: '7200' },
    idle: { type: 'string', default: '900' },
    build: { type: 'string', default: process.env.XEN_TEST_BUILD ?? join(HERE, '.build') },
    artifacts: { type: 'string', default: join(HERE, 'artifacts') },
    verbose: { type: 'boolean', short: 'v', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write(`usage: node test/xen/dev.mjs [--xen V] [--groups G|--only A,B] [--runs 'A,B;C'] [-v]
  [--dom0-mem MIB] [--boot-limit SEC] [--limit SEC (QEMU's life, default 7200)] [--build DIR] [--artifacts DIR]
  [--idle SEC (quit after this long without a request, default 900: the QEMU slot is shared)]
`);
  process.exit(0);
}
const say = (s) => process.stdout.write(`${s}\n`);
const die = (s) => { process.stderr.write(`dev.mjs: ${s}\n`); process.exit(2); };
const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
if (REPO.includes(',')) die(`the repository path must not contain a comma (QEMU -virtfs): ${REPO}`);

const file = readStageFile(join(HERE, 'stages.txt'));
const xen = opt.xen;
let first;
try {
  first = plan(file, { groups: list(opt.groups), xen: [xen], only: opt.only ? list(opt.only) : null }).boots[xen];
} catch (e) { die(e.message); }
if (!first) die(`nothing selected on Xen ${xen}`);

const bootDir = join(opt.build, xen, 'boot');
const initrd = [join(bootDir, 'dom0.cpio'), join(bootDir, 'dom0.cpio.gz')].find(existsSync);
if (!initrd) die(`Xen ${xen} is not prepared: bash test/xen/prepare.sh --xen ${xen}`);
const args = [
  ...qemuArgs({
    xen: join(bootDir, 'xen.elf'), kernel: join(bootDir, 'vmlinuz'), initrd,
    dom0Args: ['xentest.dev=1'], dom0MemMiB: Number(opt['dom0-mem']),
  }),
  '-virtfs', `local,path=${REPO},mount_tag=repo,security_model=none,readonly=on`,
];
mkdirSync(opt.artifacts, { recursive: true });
const serialPath = join(opt.artifacts, `dev-${xen}.log`);
const serial = createWriteStream(serialPath);
const ts = (t) => `[${t.toFixed(1).padStart(6)}]`;

// The request being run: its stage state, and what to do when dom0 reports it done.
let current = null;
let ready;
const readyP = new Promise((r) => { ready = r; });
const passed = new Set();
let fatal = null;

const onLine = (line, t) => {
  serial.write(`${ts(t)} ${line}\n`);
  if (opt.verbose) say(`${ts(t)} ${line}`);
  if (/^XENDEV READY/.test(line.trim())) { say(`${ts(t)} dom0 ready (serial log ${serialPath})`); ready(); return; }
  const f = /^XENDEV FAIL (.*)/.exec(line.trim());
  if (f) { fatal = f[1]; say(`${ts(t)} dom0: ${f[1]}`); ready(); if (current) current.finish(); return; }
  const d = /^XENDEV DONE (\d+)/.exec(line.trim());
  if (d && current && Number(d[1]) === current.id) { current.state.doneAt = t; current.finish(); return; }
  const m = parseMarker(line);
  if (m && current && m.kind !== 'BOOT' && m.kind !== 'DONE') {
    applyMarker(current.state, m, t);
    if (!opt.verbose && m.kind !== 'METRIC') say(`${ts(t)} ${line.trim()}`);
  } else if (!opt.verbose && /^(xentest: |dev: )/.test(line)) say(`${ts(t)} ${line}`);
  if (/Kernel panic - not syncing|\(XEN\) Panic on CPU/.test(line)) {
    fatal = line.trim();
    ready();
    if (current) current.finish();
  }
};

say(`dev: booting Xen ${xen} + dom0 once (the repository ${REPO} shared over 9p)`);
const qemu = startQemu(args, onLine, { limitS: Number(opt.limit) });
process.on('exit', killAllQemu);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { killAllQemu(); process.exit(130); });
let quitting = false; // QUIT sent: dom0 powers off, QEMU's exit is the end, not a failure
qemu.exited.then((e) => {
  if (!fatal && !quitting) fatal = `QEMU exited (code ${e.code}, signal ${e.signal})`;
  ready();
  if (current) current.finish();
});

const bootTimer = setTimeout(() => {
  fatal = `dom0 not ready within ${opt['boot-limit']}s`;
  ready();
}, Number(opt['boot-limit']) * 1000);
await readyP;
clearTimeout(bootTimer);
if (fatal) { qemu.kill(); die(fatal); }

let nextId = 1;
/** Run stages (names) in dom0 now; resolves to the verdict. */
async function runStages(names) {
  const b = spawnSync('node', [join(REPO, 'build.mjs'), '--if-needed'], { stdio: 'inherit' });
  if (b.status !== 0) { say('dev: the build failed; not running'); return { ok: false }; }
  const id = nextId++;
  const state = { stages: bootStages(file, xen, names), bootAt: 0, doneAt: null, fatal: null, unknown: [] };
  const started = qemu.now();
  await new Promise((finish) => {
    current = { id, state, finish };
    qemu.send(`RUN ${id} ${names.join(',')}\n`);
  });
  current = null;
  if (fatal) state.fatal = fatal;
  for (const s of state.stages) if (s.status === 'pass') passed.add(s.name);
  const result = verdict(state);
  say('');
  const table = timingTable({ ...state, bootAt: null, doneAt: state.doneAt != null ? state.doneAt - started : null });
  for (const l of table.slice(2, -1)) say(`  ${l}`);
  const outcome = result.ok ? 'passed' : `FAILED: ${result.problems.join('; ')}`;
  say(`dev: request ${id} ${outcome} in ${(qemu.now() - started).toFixed(1)}s`);
  return result;
}

/** The stages of a request, with the requirements not yet passed in this boot. */
function withRequirements(names) {
  const want = new Set(names);
  for (const n of names) {
    const byName = (name) => file.stages.find((x) => x.name === name);
    const need = (s) => requiredOn(file.stages, s, xen);
    for (let s = byName(n), r = need(s); r; s = byName(r), r = need(s)) {
      if (!passed.has(r)) want.add(r);
    }
  }
  return file.stages.filter((s) => want.has(s.name)).map((s) => s.name);
}

let last = first;
let ok = (await runStages(first)).ok;
const requests = opt.runs != null ? opt.runs.split(';') : null;
const rl = requests ? null : createInterface({ input: process.stdin });
const lines = rl ? rl[Symbol.asyncIterator]() : null;
const ask = async () => {
  if (requests) return requests.length ? requests.shift() : 'q';
  process.stdout.write('\nstages to run (Enter: the same again, q: quit): ');
  // A forgotten session would keep the one QEMU slot of a shared machine: quit when idle.
  let timer;
  const idle = new Promise((r) => { timer = setTimeout(() => r({ idle: true }), Number(opt.idle) * 1000); });
  const next = await Promise.race([lines.next(), idle]);
  clearTimeout(timer);
  if (next.idle) { say(`\ndev: no request for ${opt.idle}s; quitting`); return 'q'; }
  return next.done ? 'q' : next.value;
};
for (;;) {
  if (fatal) break;
  const line = (await ask()).trim();
  if (line === 'q' || line === 'quit') break;
  const names = line ? list(line) : last;
  const unknown = names.filter((n) => !file.stages.some((s) => s.name === n));
  if (unknown.length) { say(`dev: unknown stage ${unknown.join(', ')}`); continue; }
  last = names;
  ok = (await runStages(withRequirements(names))).ok && ok;
}
rl?.close();
quitting = true;
qemu.send('QUIT\n');
const t = setTimeout(() => qemu.kill(), 20000);
await qemu.exited;
clearTimeout(t);
await new Promise((r) => serial.end(r));
if (fatal) die(fatal);
process.exit(ok ? 0 : 1);
