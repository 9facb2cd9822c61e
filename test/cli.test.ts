// The executable itself: dispatch by name, exit codes, help, bad options, environment.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EXE, run } from './helpers/exe';
import { withTempDir } from './helpers/temp';

const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '../../package.json'), 'utf8')) as { version: string };

test('--version and version print the package version', () => {
  for (const args of [['--version'], ['version']]) {
    const r = run(args);
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout.trim(), `afsfile ${pkg.version}`);
  }
});

test('no command: one-line error, usage hint, exit 2', () => {
  const r = run([]);
  assert.is(r.status, 2);
  assert.match(r.stderr, /^afsfile: no command given\nTry 'afsfile --help'\.\n$/);
});

test('unknown command and unknown option exit 2 with a hint', () => {
  let r = run(['frobnicate']);
  assert.is(r.status, 2);
  assert.match(r.stderr, /unknown command "frobnicate"/);
  r = run(['create', '--no-such-flag', '/tmp/x']);
  assert.is(r.status, 2);
  assert.match(r.stderr, /unknown option --no-such-flag\nTry 'afsfile create --help'/);
  r = run(['--inspect']);
  assert.is(r.status, 2, 'node flags are not node flags here');
});

test('bad option values exit 2 and name the option', () => {
  const r = run(['create', '/tmp/never-made.img', '--size', 'ten']);
  assert.is(r.status, 2);
  assert.match(r.stderr, /--size expects a size/);
  assert.not.ok(fs.existsSync('/tmp/never-made.img'));
  const w = run(['worker', '--platform', 'xen']);
  assert.is(w.status, 2);
  assert.match(w.stderr, /--platform must be one of auto, linux, sim/);
});

test('--help lists every command; COMMAND --help lists its options', () => {
  const r = run(['--help']);
  assert.is(r.status, 0);
  for (const c of ['worker', 'renew', 'hotplug', 'demo', 'create', 'check', 'status', 'detach', 'version']) assert.match(r.stdout, new RegExp(`\\n  ${c} `));
  const c = run(['create', '--help']);
  assert.is(c.status, 0);
  assert.match(c.stdout, /usage: afsfile create PATH --size N/);
  assert.match(c.stdout, /--preallocate/);
  assert.not.match(c.stdout, /--keytab/, 'renew options are not create options');
  const h = run(['help', 'worker']);
  assert.match(h.stdout, /--fsync-interval DURATION\n +fsync a dirty image at least this often \(default 5s\)/);
});

test('a symlink and a hardlink named block-afsfile run the hotplug role', () => {
  withTempDir((tmp) => {
    const sym = path.join(tmp, 'sym', 'block-afsfile');
    const hard = path.join(tmp, 'hard', 'block-afsfile');
    fs.mkdirSync(path.dirname(sym));
    fs.mkdirSync(path.dirname(hard));
    fs.symlinkSync(EXE, sym);
    try {
      fs.linkSync(EXE, hard);
    } catch {
      fs.copyFileSync(EXE, hard); // another file system: a copy has the same name semantics
      fs.chmodSync(hard, 0o755);
    }
    for (const exe of [sym, hard]) {
      const r = run(['--help'], { exe });
      assert.is(r.status, 0, r.stderr);
      assert.match(r.stdout, /usage: afsfile hotplug add\|remove/);
      const bad = run(['frob'], { exe });
      assert.is.not(bad.status, 0);
    }
  });
});

test('the executable runs alone in an empty directory and loads its addon from inside itself', () => {
  withTempDir((tmp) => {
    const lone = path.join(tmp, 'afsfile');
    fs.copyFileSync(EXE, lone);
    fs.chmodSync(lone, 0o755);
    const rt = path.join(tmp, 'runtime');
    fs.mkdirSync(rt);
    const r = run(['version', '--verbose'], { exe: lone, env: { PATH: '/nonexistent', AFSFILE_RUNTIME_DIR: rt } });
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /native addon: abi 1/);
    assert.match(r.stdout, /node v24\./);
    assert.equal(fs.readdirSync(rt), [], 'the addon file is unlinked after loading');
    assert.equal(fs.readdirSync(tmp).sort(), ['afsfile', 'runtime']);
  });
});

test('NODE_OPTIONS from the environment is ignored', () => {
  const r = run(['--version'], { env: { NODE_OPTIONS: '--require /nonexistent/evil.js', PATH: '/usr/bin:/bin' } });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout.trim(), `afsfile ${pkg.version}`);
});

test('DEBUG output works inside the executable without a supports-color warning', () => {
  const r = run(['demo', '--seconds', '1', '--size', '8M', '--json'], { env: { PATH: '/usr/bin:/bin', DEBUG: 'afsfile:*', AFSFILE_CONFIG: '/dev/null' }, timeoutMs: 60_000 });
  assert.is(r.status, 0, r.stderr.slice(-2000));
  assert.match(r.stderr, /afsfile:device \/local\/domain\/0\/backend\/vbd\/\d+\/\d+: opened/, 'the debug namespace printed');
  assert.not.match(r.stderr, /supports-color|Cannot find module|Warning/i);
  assert.is((JSON.parse(r.stdout) as { ok: boolean }).ok, true);
});

test.run();
