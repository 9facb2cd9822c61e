// Running the built executable the way an administrator or libxl would.
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '../../..');
export const EXE = path.join(ROOT, 'dist/afsfile');

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function run(
  args: string[],
  opts: { exe?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number; argv0?: string } = {},
): RunResult {
  const r: SpawnSyncReturns<string> = spawnSync(opts.exe ?? EXE, args, {
    encoding: 'utf8',
    env: opts.env ?? { PATH: process.env.PATH ?? '/usr/bin:/bin', AFSFILE_CONFIG: '/dev/null' },
    input: opts.input ?? '',
    timeout: opts.timeoutMs ?? 30_000,
    ...(opts.argv0 ? { argv0: opts.argv0 } : {}),
  });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

// Kept here too for the imports written before test/helpers/temp.ts.
export { tempDir } from './temp';
