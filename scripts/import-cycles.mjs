#!/usr/bin/env node
// Fails when modules in different directories of src/ import each other in a circle (static,
// dynamic and type-only imports alike): the layers of DESIGN.md are directories (cli above the
// roles, the roles above engine/blkif/xen), and they only hold if imports between directories
// point one way. A circle inside one directory is listed but allowed: it is that module
// group's own business (e.g. blkif's codec and ABI tables naming each other's types).
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', process.argv[2] ?? 'src');

function files(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p) : /\.ts$/.test(e.name) && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

function resolve(from, spec) {
  const base = path.resolve(path.dirname(from), spec);
  for (const c of [`${base}.ts`, path.join(base, 'index.ts'), base]) {
    if (fs.existsSync(c) && fs.statSync(c).isFile()) return c;
  }
  return undefined;
}

const graph = new Map();
for (const f of files(root)) {
  const text = fs.readFileSync(f, 'utf8');
  const deps = new Set();
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]*)['"]/gm)) {
    const to = resolve(f, m[1]);
    if (to) deps.add(to);
  }
  graph.set(f, [...deps]);
}

// Tarjan's strongly connected components: every component of more than one module is a circle.
let index = 0;
const idx = new Map(), low = new Map(), stack = [], on = new Set(), circles = [];
function visit(v) {
  idx.set(v, index); low.set(v, index); index++;
  stack.push(v); on.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v), low.get(w))); }
    else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
  }
  if (low.get(v) === idx.get(v)) {
    const comp = [];
    let w;
    do { w = stack.pop(); on.delete(w); comp.push(w); } while (w !== v);
    if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) circles.push(comp);
  }
}
for (const v of graph.keys()) if (!idx.has(v)) visit(v);

const rel = (p) => path.relative(path.dirname(root), p);
const across = circles.filter((comp) => new Set(comp.map((f) => path.dirname(f))).size > 1);
for (const comp of circles) {
  const bad = across.includes(comp);
  const kind = bad ? 'across directories' : '(inside one directory, allowed)';
  (bad ? process.stderr : process.stdout).write(`import circle ${kind}: ${comp.map(rel).sort().join(' <-> ')}\n`);
}
if (across.length) process.exit(1);
process.stdout.write(`import-cycles: ${graph.size} modules under ${rel(root)}, no circle across directories\n`);
