#!/usr/bin/env node
// Runs each uvu test file (build/test/**/*.test.js) in its own process, so a file's daemons and
// signal handlers never leak into another, and prints one closing line: "N passed, N failed".
// Usage: node test/runner.mjs [PATTERN]   (PATTERN: a regexp on the file path)
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { outcome } from './runner-outcome.cjs';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const pattern = new RegExp(process.argv[2] ?? '.');
const perFileTimeoutMs = Number(process.env.AFSFILE_TEST_TIMEOUT_MS ?? 600_000);

function find(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? find(p) : e.name.endsWith('.test.js') ? [p] : [];
  });
}

/** A compiled test whose .ts source is gone (renamed or deleted) is not run. */
function hasSource(file) {
  const ts = path.join(root, path.relative(path.join(root, 'build'), file)).replace(/\.js$/, '.ts');
  return fs.existsSync(ts);
}

const files = find(path.join(root, 'build/test'))
  .filter((f) => hasSource(f) && pattern.test(path.relative(root, f)))
  .sort();
let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];

for (const file of files) {
  const rel = path.relative(path.join(root, 'build'), file).replace(/\.js$/, '.ts');
  const started = Date.now();
  const out = await new Promise((resolve) => {
    const child = spawn(process.execPath, ['--enable-source-maps', file], {
      cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' },
    });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    const timer = setTimeout(() => {
      text += `\nrunner: ${rel} timed out after ${perFileTimeoutMs} ms\n`;
      child.kill('SIGKILL');
    }, perFileTimeoutMs);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, text }); });
  });
  const { ok, total, skip, bad } = outcome(out);
  passed += ok;
  skipped += skip;
  failed += bad;
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  const skipNote = skip ? `, ${skip} skipped` : '';
  process.stdout.write(`${bad ? 'FAIL' : 'ok  '} ${rel} (${ok}/${total}${skipNote}, ${secs}s)\n`);
  for (const line of out.text.split('\n').filter((l) => l.startsWith('skipped: '))) {
    process.stdout.write(`     ${line}\n`);
  }
  if (bad) {
    failures.push(rel);
    process.stdout.write(out.text.replace(/\x1b\[[0-9;]*m/g, '').split('\n').map((l) => `    ${l}`).join('\n') + '\n');
  }
}

if (!files.length) {
  process.stdout.write('runner: no test files matched\n');
  process.exit(1);
}
if (failures.length) process.stdout.write(`failed files: ${failures.join(', ')}\n`);
process.stdout.write(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
process.exit(failed ? 1 : 0);
