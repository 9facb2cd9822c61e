// The block-afsfile hotplug script as libxl runs it, against the real xenstored and the real
// worker: the built executable through a symlink named block-afsfile, libxl's environment
// (empty but for its four variables, or inherited), stdin /dev/null, judged by exit status and
// by what it leaves in XenStore.
//
// The worker runs without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH (setpriv), so file modes
// matter to it as they would to a non-root owner: that is how "unreadable" and "read-only file
// for mode w" are made while the tests run as root.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import { setup, teardown } from '../helpers/hooks';
import * as assert from 'uvu/assert';
import { Toolstack, type VbdConfig, type VbdPaths } from '../../src/sim/toolstack';
import { type XenStoreClient, connectXenStore } from '../../src/xen/xenstore-client';
import { EXE, tempDir } from '../helpers/exe';
import { until } from '../helpers/wait';
import { sparseFile } from '../helpers/temp';
import { workerEnv } from '../helpers/worker';
import { type Xenstored, startXenstored } from '../helpers/xenstored';

let xsd: Xenstored;
let c: XenStoreClient;
let ts: Toolstack;
let tmp: { dir: string; cleanup: () => void };
let runDir: string;
let script: string;
let hotplugLog: string;
let fakeLogger: string;
let worker: ChildProcess | undefined;
let workerLog = '';
let nextDomid = 20;

function startWorker(): Promise<void> {
  workerLog = '';
  // Images beneath tmp.dir/images (and /dev, for the device node case) only: issue 19 defect 8.
  const roots = [path.join(tmp.dir, 'images'), '/dev'].map((r) => `--image-roots=${r}`);
  const w = spawn('setpriv', ['--bounding-set=-dac_override,-dac_read_search', '--inh-caps=-dac_override,-dac_read_search',
    '--', EXE, 'worker', '--platform', 'sim', ...roots], {
    env: workerEnv(xsd.socketPath, runDir, { AFSFILE_CONFIG: '/dev/null' }), stdio: ['ignore', 'pipe', 'pipe'],
  });
  w.stdout?.on('data', (d) => (workerLog += d));
  w.stderr?.on('data', (d) => (workerLog += d));
  worker = w;
  return until('worker status file', () => fs.existsSync(path.join(runDir, 'status/worker.json')) || (w.exitCode !== null && Promise.reject(new Error(workerLog))), 15_000).then(() => undefined);
}

function stopWorker(signal: NodeJS.Signals): Promise<void> {
  const w = worker;
  worker = undefined;
  if (!w || w.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => { w.once('exit', () => resolve()); w.kill(signal); });
}

interface HotplugRun { status: number | null; stderr: string; ms: number }

/** Runs block-afsfile ACTION as libxl__hotplug_disk does (env replaced, stdin /dev/null). */
function hotplug(action: 'add' | 'remove', p: VbdPaths, envKind: 'empty' | 'inherited' = 'empty', extra: NodeJS.ProcessEnv = {}): Promise<HotplugRun> {
  const libxl = {
    script: '/etc/xen/scripts/block-afsfile',
    XENBUS_TYPE: 'vbd',
    XENBUS_PATH: p.backend.replace(/^\/local\/domain\/0\//, ''),
    XENBUS_BASE_PATH: 'backend',
  };
  // The private xenstored, log file and syslog (a fake logger) are the only additions libxl would not make.
  const env = {
    ...(envKind === 'inherited' ? process.env : {}), ...libxl, XENSTORED_PATH: xsd.socketPath,
    AFSFILE_HOTPLUG_LOG: hotplugLog, AFSFILE_HOTPLUG_SYSLOG: fakeLogger, ...extra,
  };
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(script, [action], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout.on('data', (d) => (stderr += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 45_000); // libxl's 40 s, plus slack
    child.on('error', reject);
    child.on('close', (status) => { clearTimeout(timer); resolve({ status, stderr, ms: performance.now() - t0 }); });
  });
}

function image(name: string, size = 1 << 20, mode = 0o600, dir = path.join(tmp.dir, 'images')): string {
  const p = sparseFile(dir, name, size);
  fs.chmodSync(p, mode);
  return p;
}

function mkdirIn(rel: string): string {
  const d = path.join(tmp.dir, rel);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

function fifo(name: string): string {
  const f = path.join(tmp.dir, 'images', name);
  if (!fs.existsSync(f)) execFileSync('mkfifo', [f]);
  return f;
}

/** A symlink images/NAME → `to`; a valid image outside the root is made beside (tmp.dir/outside.img). */
function escapeLink(name: string, to: string): string {
  image('outside.img', 1 << 20, 0o600, tmp.dir);
  const l = path.join(tmp.dir, 'images', name);
  if (!fs.existsSync(l)) fs.symlinkSync(to, l);
  return l;
}

const made: VbdPaths[] = [];
/** libxl's order: write the device, wait for InitWait (10 s), then run the script. */
async function attach(cfg: Omit<VbdConfig, 'domid'> & { domid?: number }): Promise<VbdPaths> {
  const domid = cfg.domid ?? nextDomid++;
  if (cfg.domid === undefined) await ts.createDomain(domid);
  const p = await ts.addVbd({ ...cfg, domid });
  made.push(p);
  assert.ok(await ts.waitBackendState(p, 2, 10_000), `InitWait for ${cfg.target}\n${workerLog}`);
  return p;
}

const read = (k: string): Promise<string | undefined> => c.tryRead(k);

setup(test, async () => {
  tmp = tempDir('afsfile-hotplug-');
  runDir = path.join(tmp.dir, 'run');
  hotplugLog = path.join(tmp.dir, 'log/xen-hotplug.log');
  fs.mkdirSync(path.join(tmp.dir, 'scripts'));
  fs.mkdirSync(path.join(tmp.dir, 'images'));
  // logger as Xen's hotplug scripts call it; records its arguments instead of writing to syslog.
  fakeLogger = path.join(tmp.dir, 'logger');
  const sink = path.join(tmp.dir, 'syslog');
  fs.writeFileSync(fakeLogger, `#!/bin/sh\nprintf '%s|' "$@" >> ${sink}\necho >> ${sink}\n`, { mode: 0o755 });
  script = path.join(tmp.dir, 'scripts/block-afsfile');
  fs.symlinkSync(EXE, script);
  xsd = await startXenstored();
  c = await connectXenStore({ env: { XENSTORED_PATH: xsd.socketPath } });
  ts = new Toolstack(c);
  await startWorker();
});

test.after.each(async () => {
  const list = made.splice(0);
  await Promise.all(list.map((p) => ts.removeVbd(p, { timeoutMs: 10_000 }).catch(() => undefined)));
});

teardown(test, async () => {
  await stopWorker('SIGKILL');
  c?.close();
  await xsd?.stop();
  tmp?.cleanup();
});

test('add: the worker opened the image → hotplug-status=connected, exit 0, nothing else written', async () => {
  for (const envKind of ['empty', 'inherited'] as const) {
    const img = image(`ok-${envKind}.img`);
    const p = await attach({ target: img });
    const before = new Set(await c.directory(p.backend));
    const r = await hotplug('add', p, envKind);
    assert.is(r.status, 0, r.stderr + workerLog);
    assert.is(await read(`${p.backend}/hotplug-status`), 'connected');
    assert.is(await read(`${p.backend}/hotplug-error`), undefined);
    const after = (await c.directory(p.backend)).filter((k) => !before.has(k));
    assert.not.ok(after.includes('physical-device') || after.includes('physical-device-path'), 'never physical-device');
    const log = fs.readFileSync(hotplugLog, 'utf8');
    assert.match(log, new RegExp(`add ${p.backend.replace('/local/domain/0/', '')}: connected: the worker opened ${img}`));
  }
});

test('add with the afsfile: prefix and aio: prefix strips it', async () => {
  for (const prefix of ['afsfile:', 'aio:']) {
    const img = image(`prefix-${prefix.slice(0, -1)}.img`);
    const p = await attach({ target: `${prefix}${img}` });
    const r = await hotplug('add', p);
    assert.is(r.status, 0, r.stderr + workerLog);
    assert.is(await read(`${p.backend}/hotplug-status`), 'connected');
  }
});

interface BadCase { name: string; target: () => string; access?: 'ro' | 'rw'; mode?: string; message: RegExp }

const BAD: BadCase[] = [
  { name: 'relative path', target: () => 'images/rel.img', message: /not absolute/ },
  { name: 'directory', target: () => mkdirIn('images/adir'), message: /is a directory/ },
  { name: 'device node', target: () => '/dev/null', message: /is a character device, not a regular file/ },
  { name: 'fifo', target: () => fifo('fifo'), message: /is a FIFO, not a regular file/ },
  { name: 'read-only fifo', target: () => fifo('rofifo'), access: 'ro', message: /is a FIFO, not a regular file/ },
  { name: 'missing file', target: () => path.join(tmp.dir, 'images/missing.img'), message: /does not exist/ },
  { name: 'symlink to a directory', target: () => escapeLink('link-to-dir', '.'), message: /is a directory/ },
  // Issue 19 defect 8: the worker opens as root, with tokens; images stay beneath image-roots.
  { name: 'symlink leaving the image root', target: () => escapeLink('escape.img', path.join(tmp.dir, 'outside.img')),
    message: /leads outside its image root/ },
  { name: 'relative symlink leaving the image root', target: () => escapeLink('rel-escape.img', '../outside.img'),
    message: /leads outside its image root/ },
  { name: '".." leaving the image root', target: () => `${escapeLink('x', '.')}/../../outside.img`,
    message: /leads outside its image root/ },
  { name: 'an image outside every image root', target: () => image('elsewhere.img', 1 << 20, 0o600, tmp.dir),
    message: /not beneath any image root/ },
  { name: 'size not a multiple of 512', target: () => image('odd.img', 1000), message: /not a multiple of 512/ },
  { name: 'unreadable', target: () => image('unreadable.img', 1 << 20, 0o000), access: 'ro', message: /permission denied/i },
  { name: 'read-only file for mode w', target: () => image('readonly.img', 1 << 20, 0o400), access: 'rw', message: /permission denied|read-only/i },
  { name: 'garbage mode', target: () => image('mode.img'), mode: 'x', message: /mode "x" is not r or w/ },
  // Xen's other spellings: the worker takes r and w only, so the script refuses them at once.
  { name: 'mode rw', target: () => image('mode-rw.img'), mode: 'rw', message: /mode "rw" is not r or w/ },
  { name: 'mode ro', target: () => image('mode-ro.img'), mode: 'ro', message: /mode "ro" is not r or w/ },
  { name: 'mode w!', target: () => image('mode-wbang.img'), mode: 'w!', message: /mode "w!" is not r or w/ },
];

for (const bad of BAD) {
  test(`bad input: ${bad.name} → exit 1, hotplug-error names the image, hotplug-status=error`, async () => {
    const target = bad.target();
    const p = await attach({ target, access: bad.access ?? 'rw' });
    if (bad.mode) await c.write(`${p.backend}/mode`, bad.mode);
    const r = await hotplug('add', p);
    assert.is(r.status, 1, r.stderr);
    const err = await read(`${p.backend}/hotplug-error`);
    assert.ok(err, 'hotplug-error written');
    assert.match(err!, bad.message);
    assert.ok(err!.includes(target) || err!.includes(path.basename(target)), `names the image: ${err}`);
    assert.is(await read(`${p.backend}/hotplug-status`), 'error');
    assert.is(await read(`${p.backend}/physical-device`), undefined);
  });
}

test('two concurrent rw adds of one image for two domains: exactly one wins', async () => {
  const img = image('shared-rw.img');
  const [a, b] = await Promise.all([attach({ target: img }), attach({ target: img })]);
  const [ra, rb] = await Promise.all([hotplug('add', a!), hotplug('add', b!)]);
  const wins = [ra, rb].filter((r) => r.status === 0).length;
  assert.is(wins, 1, `${ra.stderr}\n${rb.stderr}\n${workerLog}`);
  const loser = ra.status === 0 ? b! : a!;
  assert.match((await read(`${loser.backend}/hotplug-error`)) ?? '', /already|in use|attached/i);
  // Decided by the supervisor (neither held the image when the other's script looked): xl
  // must still hear `busy`, not `error`.
  assert.is(await read(`${loser.backend}/hotplug-status`), 'busy');
});

test('another name of an image in use (a symlink): the script compares names only, the worker answers busy', async () => {
  const img = image('alias-target.img');
  const alias = path.join(tmp.dir, 'images/alias-link.img');
  fs.symlinkSync(path.basename(img), alias);
  const a = await attach({ target: img });
  assert.is((await hotplug('add', a)).status, 0);
  const b = await attach({ target: alias });
  const r = await hotplug('add', b);
  assert.is(r.status, 1);
  assert.is(await read(`${b.backend}/hotplug-status`), 'busy', r.stderr);
  assert.match((await read(`${b.backend}/hotplug-error`)) ?? '', new RegExp(`domain ${a.domid}`));
});

test('the sharing check never stats another backend\'s image (a hung file server would block it)', async () => {
  const held = image('held-elsewhere.img');
  const a = await attach({ target: held });
  assert.is((await hotplug('add', a)).status, 0);
  const p = await attach({ target: image('mine.img') });
  const trace = path.join(tmp.dir, 'hotplug.strace');
  const libxl = { XENBUS_TYPE: 'vbd', XENBUS_PATH: p.backend.replace(/^\/local\/domain\/0\//, ''), XENBUS_BASE_PATH: 'backend', XENSTORED_PATH: xsd.socketPath, AFSFILE_HOTPLUG_LOG: hotplugLog };
  const status = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('strace', ['-f', '-qq', '-o', trace, '-e', 'trace=%stat,%file', script, 'add'], { env: libxl, stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', resolve);
  });
  assert.is(status, 0);
  const calls = fs.readFileSync(trace, 'utf8').split('\n').filter((l) => l.includes('held-elsewhere.img'));
  assert.equal(calls, [], 'no system call named the other image');
});

test('ro + ro of one image is allowed; rw over an ro attachment is refused as busy', async () => {
  const img = image('shared-ro.img');
  const a = await attach({ target: img, access: 'ro' });
  assert.is((await hotplug('add', a)).status, 0);
  const b = await attach({ target: img, access: 'ro' });
  const rb = await hotplug('add', b);
  assert.is(rb.status, 0, rb.stderr);
  const w = await attach({ target: img, access: 'rw' });
  const rw = await hotplug('add', w);
  assert.is(rw.status, 1);
  const err = (await read(`${w.backend}/hotplug-error`)) ?? '';
  assert.match(err, /already attached read-only to domain|in use/);
  assert.ok(err.includes(img));
  assert.ok(['busy', 'error'].includes((await read(`${w.backend}/hotplug-status`)) ?? ''));
});

test('a file held by a non-afsfile backend (Xen\'s block script over loop) is busy', async () => {
  const img = image('loop-held.img');
  const domid = nextDomid++;
  await ts.createDomain(domid);
  const other = await ts.addVbd({ domid, target: img, script: 'block' });
  await c.write(`${other.backend}/physical-device`, '7:0');
  await c.write(`${other.backend}/hotplug-status`, 'connected');
  const p = await attach({ target: img });
  const r = await hotplug('add', p);
  assert.is(r.status, 1);
  assert.is(await read(`${p.backend}/hotplug-status`), 'busy');
  assert.match((await read(`${p.backend}/hotplug-error`)) ?? '', new RegExp(`already attached read-write to domain ${domid}`));
  await ts.destroy(other);
});

test('bad invocations: no XENBUS_PATH, bad action', async () => {
  const img = image('inv.img');
  const p = await attach({ target: img });
  const noPath = await hotplug('add', p, 'empty', { XENBUS_PATH: '' });
  assert.is(noPath.status, 1);
  assert.match(noPath.stderr, /XENBUS_PATH is not set/);
  const bad = await new Promise<number | null>((resolve) => spawn(script, ['frob'], { stdio: 'ignore', env: {} }).on('close', resolve));
  assert.is(bad, 2);
});

test('hotplug decisions also go to syslog through logger, as Xen\'s block scripts send them', async () => {
  const p = await attach({ target: image('syslog.img') });
  assert.is((await hotplug('add', p)).status, 0);
  const tag = `add ${p.backend.replace(/^\/local\/domain\/0\//, '')}`;
  const syslog = (): string => (fs.existsSync(path.join(tmp.dir, 'syslog')) ? fs.readFileSync(path.join(tmp.dir, 'syslog'), 'utf8') : '');
  await until('logger ran', () => syslog().includes(`-t|block-afsfile|-p|daemon.notice|--|${tag}: connected:`), 5000);
  const q = await attach({ target: path.join(tmp.dir, 'images/missing.img') });
  assert.is((await hotplug('add', q)).status, 1);
  await until('the error at err priority', () => /-p\|daemon\.err\|--\|add .*: error: /.test(syslog()), 5000);
});

test('a broken config file: add reports file and line in hotplug-error; remove still succeeds', async () => {
  const conf = path.join(tmp.dir, 'broken.conf');
  fs.writeFileSync(conf, '# typo below\nhotplug-wiat = 10\n');
  const p = await attach({ target: image('conf.img') });
  const r = await hotplug('add', p, 'empty', { AFSFILE_CONFIG: conf });
  assert.is(r.status, 1);
  assert.is(await read(`${p.backend}/hotplug-status`), 'error');
  assert.is(await read(`${p.backend}/hotplug-error`), `afsfile: ${conf}:2: unknown key "hotplug-wiat" (the keys are listed in \`afsfile help config\`) (\`afsfile check\` lists every problem)`);
  fs.writeFileSync(conf, 'hotplug-wait = 0\n');
  const p2 = await attach({ target: image('conf2.img') });
  assert.is((await hotplug('add', p2, 'empty', { AFSFILE_CONFIG: conf })).status, 1);
  assert.match((await read(`${p2.backend}/hotplug-error`)) ?? '', /broken\.conf:1: hotplug-wait expects a duration .* from 1 s to 10 min; got "0"/);
  await ts.removeVbd(p2, { timeoutMs: 10_000 }).catch(() => undefined);
  assert.is((await hotplug('remove', p2, 'empty', { AFSFILE_CONFIG: conf })).status, 0);
});

test('remove: exits 0 once the device is Closed, and when it is already gone', async () => {
  const img = image('rm.img');
  const p = await attach({ target: img });
  assert.is((await hotplug('add', p)).status, 0);
  made.splice(made.indexOf(p), 1);
  const removal = ts.removeVbd(p, { timeoutMs: 10_000, destroy: false });
  const r = await hotplug('remove', p);
  assert.is(r.status, 0, r.stderr);
  assert.ok((await removal).closed);
  assert.match(fs.readFileSync(hotplugLog, 'utf8'), /removed: the backend answered Closed/);
  await ts.destroy(p);
  const gone = await hotplug('remove', p);
  assert.is(gone.status, 0);
  assert.match(gone.stderr, /already gone/);
});

test('remove after a worker crash: bounded, exit 0; a restarted worker serves again', async () => {
  const img = image('crash.img');
  const p = await attach({ target: img });
  assert.is((await hotplug('add', p)).status, 0);
  await stopWorker('SIGKILL');
  made.splice(made.indexOf(p), 1);
  // libxl: online=0 + state=5, waits 10 s for Closed (nobody answers), then runs remove.
  await c.transaction(async (tx) => { await tx.write(`${p.backend}/online`, '0'); await tx.write(`${p.backend}/state`, '5'); });
  const conf = path.join(tmp.dir, 'short-wait.conf');
  fs.writeFileSync(conf, 'hotplug-wait = 3\n');
  const r = await hotplug('remove', p, 'empty', { AFSFILE_CONFIG: conf });
  assert.is(r.status, 0, r.stderr);
  assert.ok(r.ms < 8000, `bounded: ${r.ms} ms`);
  assert.match(r.stderr, /did not answer Closed in time/);
  await ts.destroy(p);
  await startWorker();
  const q = await attach({ target: image('after-crash.img') });
  assert.is((await hotplug('add', q)).status, 0, workerLog);
});

test('the worker never gave a verdict: add times out inside libxl\'s 40 s with a clear error', async () => {
  const img = image('silent.img');
  const domid = nextDomid++;
  await ts.createDomain(domid);
  // A device the worker does not serve (another script name), so no afsfile-status ever comes.
  const p = await ts.addVbd({ domid, target: img, script: 'block-other' });
  const conf = path.join(tmp.dir, 'short-wait.conf');
  fs.writeFileSync(conf, 'hotplug-wait = 2\n');
  const r = await hotplug('add', p, 'empty', { AFSFILE_CONFIG: conf });
  assert.is(r.status, 1);
  assert.match((await read(`${p.backend}/hotplug-error`)) ?? '', /did not open the image within 2 s; is afsfile.service running/);
  await ts.destroy(p);
});

test('the device is removed while add waits: add ends at once and does not re-create the backend dir', async () => {
  const img = image('removed-while-waiting.img');
  const domid = nextDomid++;
  await ts.createDomain(domid);
  // Not served by the worker (another script name): afsfile-status never comes.
  const p = await ts.addVbd({ domid, target: img, script: 'block-other' });
  const conf = path.join(tmp.dir, 'long-wait.conf');
  fs.writeFileSync(conf, 'hotplug-wait = 25\n');
  const running = hotplug('add', p, 'empty', { AFSFILE_CONFIG: conf });
  await until('add is waiting', () => fs.existsSync(hotplugLog) && fs.readFileSync(hotplugLog, 'utf8').includes('removed-while-waiting.img mode w'), 10_000);
  await new Promise((r) => setTimeout(r, 300));
  await ts.destroy(p);
  const r = await running;
  assert.is(r.status, 1);
  assert.ok(r.ms < 10_000, `noticed the removal, did not wait out hotplug-wait: ${Math.round(r.ms)} ms`);
  assert.match(r.stderr, /removed while waiting/);
  assert.is(await read(p.backend), undefined, 'backend dir not re-created');
});

test.run();
