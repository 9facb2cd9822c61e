// Help as an administrator reads it: wrapped to the terminal, EXIT STATUS / ENVIRONMENT /
// EXAMPLES, internal flags hidden, `help frob` a usage error, a man page and bash completion
// made from the option table (and installed), and `npm run bench -- --help` that runs nothing.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { OPTIONS } from '../src/cli/options';
import { ROOT, run } from './helpers/exe';
import { withTempDir } from './helpers/temp';

const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv =>
  ({ PATH: process.env.PATH, AFSFILE_CONFIG: '/dev/null', ...extra });

test('wrapped to the width (COLUMNS when not a terminal), with exit status, environment, examples', () => {
  for (const cols of [60, 100]) {
    const r = run(['help'], { env: env({ COLUMNS: String(cols) }) });
    assert.is(r.status, 0);
    // Examples stay whole.
    const long = r.stdout.split('\n').filter((l) => l.length > cols && !/^  (afsfile|systemctl) /.test(l));
    assert.equal(long, [], `no line over ${cols}`);
    for (const section of ['exit status:', 'environment:', 'examples:']) {
      assert.ok(r.stdout.includes(`\n${section}\n`), section);
    }
    for (const v of ['XENSTORED_PATH', 'DEBUG', 'AFSFILE_CONFIG']) assert.match(r.stdout, new RegExp(`\\n  ${v} +`));
    assert.match(r.stdout, /\n {2}78 +configuration error/);
  }
  const s = run(['status', '--help'], { env: env() });
  assert.match(s.stdout, /exit status:\n {2}0 +the worker runs and no device failed\n {2}1 +a device failed/);
});

test('internal flags are hidden; check --help describes check\'s own options; help frob exits 2', () => {
  const w = run(['worker', '--help'], { env: env() }).stdout;
  const r = run(['renew', '--help'], { env: env() }).stdout;
  for (const hidden of OPTIONS.filter((o) => o.hidden)) {
    assert.not.ok(w.includes(`--${hidden.name}`) || r.includes(`--${hidden.name}`), hidden.name);
  }
  assert.ok(w.includes('--max-queues'));
  const c = run(['check', '--help'], { env: env() });
  assert.is(c.status, 0);
  assert.match(c.stdout, /^usage: afsfile check/);
  assert.match(c.stdout, /--selftest\n +also exercise/);
  assert.not.match(c.stdout, /--max-queues/);
  const frob = run(['help', 'frob'], { env: env() });
  assert.is(frob.status, 2);
  assert.match(frob.stderr, /no help for "frob": not a command/);
  assert.is(run(['help', 'config'], { env: env() }).status, 0);
});

test('man page and bash completion come from the option table; install.sh installs both', () => {
  const man = run(['help', 'man'], { env: env() }).stdout;
  for (const s of ['.TH AFSFILE 8', '.SH "EXIT STATUS"', '.SH ENVIRONMENT', '.SH EXAMPLES', '.B \\-\\-preallocate']) {
    assert.ok(man.includes(s), s);
  }
  assert.not.ok(man.includes('in\\-pag'), 'internal flags hidden');
  const comp = run(['help', 'completion'], { env: env() }).stdout;
  assert.is(spawnSync('bash', ['-n'], { input: comp }).status, 0, 'valid bash');
  // Completing `afsfile create --pre` in a real bash.
  const script = `${comp}\nCOMP_WORDS=(afsfile create --pre); COMP_CWORD=2; _afsfile; echo "\${COMPREPLY[@]}"`;
  assert.is(execFileSync('bash', ['-c', script], { encoding: 'utf8' }).trim(), '--preallocate');
  const first = `${comp}\nCOMP_WORDS=(afsfile st); COMP_CWORD=1; _afsfile; echo "\${COMPREPLY[@]}"`;
  assert.is(execFileSync('bash', ['-c', first], { encoding: 'utf8' }).trim(), 'status');
  withTempDir((tmp) => {
    execFileSync('sh', [path.join(ROOT, 'install.sh')], { env: { ...process.env, DESTDIR: tmp }, stdio: 'pipe' });
    assert.is(fs.readFileSync(path.join(tmp, 'usr/share/man/man8/afsfile.8'), 'utf8'), man);
    assert.is(fs.readFileSync(path.join(tmp, 'usr/share/bash-completion/completions/afsfile'), 'utf8'), comp);
  });
});

test('npm run bench -- --help and unknown flags start no benchmark', () => {
  const main = path.join(ROOT, 'build/bench/main.js');
  const t0 = Date.now();
  const h = spawnSync(process.execPath, [main, '--help'], { encoding: 'utf8', timeout: 20_000 });
  assert.is(h.status, 0);
  assert.match(h.stdout, /^usage: npm run bench -- \[OPTIONS\]/);
  assert.is(h.stderr, '', 'no progress: nothing ran');
  const bad = spawnSync(process.execPath, [main, '--quik'], { encoding: 'utf8', timeout: 20_000 });
  assert.is(bad.status, 2);
  assert.is(bad.stderr, 'bench: unknown option --quik; nothing was run (npm run bench -- --help)\n');
  assert.ok(Date.now() - t0 < 15_000);
});

test.run();
