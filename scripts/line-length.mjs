#!/usr/bin/env node
// Lines of src/, test/, bench/ and scripts/ (TypeScript, JavaScript, C) are at most LIMIT
// columns. 120: two files side by side still fit a laptop screen and a review tool's split
// view, and nearly all the code already keeps to it (80 would rewrap most of the tree for no
// reader's gain). Long lines written before this check are counted per file in
// scripts/line-length-allow.txt: a file may keep that many, never more (a ratchet: wrap some,
// then `node scripts/line-length.mjs --update` lowers the count). New files get none.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const LIMIT = 120;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const ALLOW = path.join(root, 'scripts/line-length-allow.txt');
const HEADER = `# Files with lines over ${LIMIT} columns written before scripts/line-length.mjs existed, and how
# many each may still have. Only ever lowered: wrap lines, then run
# node scripts/line-length.mjs --update
`;

function files() {
  const args = ['ls-files', '-co', '--exclude-standard', 'src', 'test', 'bench', 'scripts'];
  const out = execFileSync('git', args, { cwd: root, encoding: 'utf8' });
  return out.split('\n').filter((f) => /\.(ts|mjs|js|c|h)$/.test(f) && fs.existsSync(path.join(root, f)));
}

function overLong(file) {
  const lines = fs.readFileSync(path.join(root, file), 'utf8').split('\n');
  return lines.flatMap((l, i) => (l.length > LIMIT ? [{ line: i + 1, length: l.length }] : []));
}

function readAllow() {
  if (!fs.existsSync(ALLOW)) return new Map();
  return new Map(fs.readFileSync(ALLOW, 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('#'))
    .map((l) => { const [f, n] = l.trim().split(/\s+/); return [f, Number(n)]; }));
}

const counts = new Map(files().map((f) => [f, overLong(f)]).filter(([, v]) => v.length > 0));

if (process.argv.includes('--update')) {
  const old = readAllow();
  const rows = [...counts].filter(([f]) => old.has(f)).map(([f, v]) => [f, Math.min(v.length, old.get(f))]);
  fs.writeFileSync(ALLOW, HEADER + rows.map(([f, n]) => `${f} ${n}`).join('\n') + '\n');
  const sum = rows.reduce((s, [, n]) => s + n, 0);
  process.stdout.write(`line-length: ${sum} allowed long lines in ${rows.length} files\n`);
  process.exit(0);
}

const allow = readAllow();
let bad = 0;
for (const [f, v] of counts) {
  const may = allow.get(f) ?? 0;
  if (v.length <= may) continue;
  bad++;
  const where = v.map((x) => `${f}:${x.line} (${x.length})`).join(', ');
  process.stderr.write(`${f}: ${v.length} lines over ${LIMIT} columns, ${may} allowed: wrap them: ${where}\n`);
}
if (bad) process.exit(1);
const total = [...counts.values()].reduce((s, v) => s + v.length, 0);
const listed = path.relative(root, ALLOW);
process.stdout.write(`line-length: no line over ${LIMIT} columns beyond the ${total} listed in ${listed}\n`);
