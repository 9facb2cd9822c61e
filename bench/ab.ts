// `npm run bench:ab -- --sides A,B[,...] --patterns P,Q`: engine rounds (bench/engine-child) of
// several builds or settings, alternating within each round (the order reversed every other
// round), with fio io_uring at the same iodepth as a side of its own; per side the median and
// range of the value and of the CPU per request, and per round the ratio of each side to the
// first. For a before/after of a change: bundle the engine child of the old tree once
// (`npm run bench:ab -- --bundle-to F` there), copy it into build/bench/ of the new tree (the
// native addon is looked for beside the bundle), and name it as a side there.
//   A side: NAME (this tree's bundle), NAME@BUNDLE (another one), NAME=K=V+K=V (this tree's
//   bundle with these environment variables), or `fio`.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import minimist from 'minimist';
import { bundleEngineChild, engineNode, nodeFlags, threadpoolFor } from './engine';
import type { EngineRunResult, EngineRunSpec } from './engine-guest';
import { runFio } from './fio';
import { PATTERNS, type Pattern, unitOf, valueOf } from './patterns';
import { progress } from './report';
import { summarize } from './stats';
import { makeWorkFile } from './workfile';

const USAGE = `usage: npm run bench:ab -- --sides A,B[,...] [--patterns P,Q] [--rounds N] [--seconds S]
  [--direct] [--dir DIR] [--size MIB] | --bundle-to FILE
  a side: NAME (this tree), NAME@BUNDLE, NAME=K=V+K=V (this tree with that environment), fio
  patterns (default '1M seqwrite qd4,4k randwrite qd32,4k randwrite qd1'):
    ${PATTERNS.map((p) => p.name).join(', ')}
`;

interface Side {
  name: string;
  bundle?: string;
  env: Record<string, string>;
}

function parseSide(s: string, own: string): Side {
  const at = s.indexOf('@');
  const eq = s.indexOf('=');
  if (at > 0 && (eq < 0 || at < eq)) return { name: s.slice(0, at), bundle: s.slice(at + 1), env: {} };
  if (s === 'fio') return { name: s, env: {} };
  const env: Record<string, string> = {};
  if (eq > 0) {
    for (const kv of s.slice(eq + 1).split('+')) {
      const i = kv.indexOf('=');
      if (i <= 0) throw new Error(`--sides: ${s}: want NAME=K=V+K=V`);
      env[kv.slice(0, i)] = kv.slice(i + 1);
    }
  }
  return { name: eq > 0 ? s.slice(0, eq) : s, bundle: own, env };
}

function engineRound(side: Side, spec: EngineRunSpec): EngineRunResult {
  const env: NodeJS.ProcessEnv = { ...process.env, UV_THREADPOOL_SIZE: String(threadpoolFor()), ...side.env };
  delete env.NODE_OPTIONS;
  delete env.DEBUG;
  const r = spawnSync(engineNode(), [...nodeFlags(), side.bundle!, JSON.stringify(spec)], {
    encoding: 'utf8', env, timeout: (spec.seconds + spec.warmupSeconds + 60) * 1000,
  });
  if (r.status !== 0) throw new Error(`${side.name}: engine round failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as EngineRunResult;
}

const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3));

function main(): number {
  const argv = minimist(process.argv.slice(2), {
    boolean: ['direct', 'help'], string: ['sides', 'patterns', 'rounds', 'seconds', 'dir', 'size', 'bundle-to'],
  });
  if (argv.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const own = bundleEngineChild();
  if (typeof argv['bundle-to'] === 'string') {
    fs.copyFileSync(own, argv['bundle-to']);
    process.stdout.write(`${argv['bundle-to']}\n`);
    return 0;
  }
  if (typeof argv.sides !== 'string') {
    process.stderr.write(USAGE);
    return 2;
  }
  const sides = argv.sides.split(',').filter(Boolean).map((s) => parseSide(s, own));
  const names = typeof argv.patterns === 'string'
    ? argv.patterns.split(',')
    : ['1M seqwrite qd4', '4k randwrite qd32', '4k randwrite qd1'];
  const patterns = names.map((n): Pattern => {
    const p = PATTERNS.find((x) => x.name === n);
    if (!p) throw new Error(`unknown pattern ${n}`);
    return p;
  });
  const rounds = Number(argv.rounds ?? 5);
  const seconds = Number(argv.seconds ?? 2);
  const direct = argv.direct === true;
  const file = makeWorkFile(typeof argv.dir === 'string' ? argv.dir : '/var/tmp', Number(argv.size ?? 256) << 20);
  const out: string[] = [`load ${fs.readFileSync('/proc/loadavg', 'utf8').trim()} at the start`];
  try {
    for (const p of patterns) {
      const got = new Map<string, Array<{ v: number; cpu: number }>>(sides.map((s) => [s.name, []]));
      for (let r = 0; r < rounds; r++) {
        for (const side of r % 2 ? [...sides].reverse() : sides) {
          if (!direct) file.warm();
          let res: { v: number; cpu: number };
          if (side.name === 'fio') {
            const f = runFio({
              file: file.path, size: file.size, pattern: p, engine: 'io_uring', direct, seconds, warmupSeconds: 0.5,
            });
            res = { v: valueOf(p, f), cpu: f.cpuUsPerRequest };
          } else {
            const e = engineRound(side, { file: file.path, direct, pattern: p, seconds, warmupSeconds: 0.7 });
            res = { v: valueOf(p, e), cpu: e.cpuUsPerRequest };
          }
          got.get(side.name)!.push(res);
          const what = `${fmt(res.v)} ${unitOf(p)}, ${fmt(res.cpu)} us/req`;
          progress(`ab: ${p.name} round ${r + 1}/${rounds} ${side.name}: ${what}`);
        }
      }
      out.push(`${p.name}${direct ? ' O_DIRECT' : ''} (${rounds} rounds of ${seconds} s)`);
      const first = got.get(sides[0]!.name)!;
      for (const side of sides) {
        const xs = got.get(side.name)!;
        const v = summarize(xs.map((x) => x.v));
        const c = summarize(xs.map((x) => x.cpu));
        let line = `  ${side.name.padEnd(12)} ${fmt(v.median)} ${unitOf(p)} (${fmt(v.min)}-${fmt(v.max)}), ` +
          `${fmt(c.median)} us/req (${fmt(c.min)}-${fmt(c.max)})`;
        if (side !== sides[0]) {
          const rv = xs.map((x, i) => x.v / first[i]!.v);
          const rc = xs.map((x, i) => x.cpu / first[i]!.cpu);
          line += `; /${sides[0]!.name} per round: ${rv.map(fmt).join(' ')}, median ${fmt(summarize(rv).median)}; ` +
            `CPU median ${fmt(summarize(rc).median)}`;
        }
        out.push(line);
      }
    }
  } finally {
    file.remove();
  }
  out.push(`load ${fs.readFileSync('/proc/loadavg', 'utf8').trim()} at the end`);
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}

process.exitCode = main();
