// test/runner.mjs as CI reads it: a skipped test is counted as skipped (not failed), a failed or
// crashed file as failed, and a compiled test whose .ts source is gone is not run at all.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from './helpers/exe';
import { withTempDir } from './helpers/temp';

interface Outcome { ok: number; total: number; skip: number; bad: number }
const { outcome } = require(path.join(ROOT, 'test/runner-outcome.cjs')) as {
  outcome: (r: { code: number | null; text: string }) => Outcome;
};

/** Runs a uvu file made of `body` with the real uvu and reads it as the runner does. */
function runUvu(dir: string, body: string): Outcome {
  const file = path.join(dir, `t${Math.random().toString(36).slice(2)}.js`);
  const uvu = JSON.stringify(path.join(ROOT, 'node_modules/uvu'));
  fs.writeFileSync(file, `const { test } = require(${uvu});\n${body}\n`);
  const r = spawnSync(process.execPath, [file], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return outcome({ code: r.status, text: r.stdout + r.stderr });
}

test('a skipped test is skipped, not failed; a failure or an early exit fails', () => withTempDir((dir) => {
  assert.equal(runUvu(dir, "test('a', () => {}); test.skip('b', () => {}); test.run();"),
    { ok: 1, total: 1, skip: 1, bad: 0 });
  assert.equal(runUvu(dir, "test.skip('b', () => {}); test.run();"), { ok: 0, total: 0, skip: 1, bad: 0 });
  assert.equal(runUvu(dir, "test('a', () => { throw new Error('x'); }); test.skip('b', () => {}); test.run();"),
    { ok: 0, total: 1, skip: 1, bad: 1 });
  assert.is(runUvu(dir, "process.exit(0);").bad, 1, 'a file that printed no summary');
  assert.is(runUvu(dir, "test('a', () => {}); test.run(); setTimeout(() => process.exit(3), 50);").bad, 1,
    'a file that exits non-zero after its tests');
}));

test('a compiled test whose source is gone is not run', () => {
  const name = `zz-stale-${process.pid}`;
  const stale = path.join(ROOT, 'build/test', `${name}.test.js`);
  fs.writeFileSync(stale, "process.stdout.write('stale ran\\n'); process.exit(1);\n");
  try {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'test/runner.mjs'), name], { encoding: 'utf8' });
    assert.not.match(r.stdout, 'stale ran');
    assert.match(r.stdout, 'no test files matched');
  } finally {
    fs.rmSync(stale, { force: true });
  }
});

test.run();
