// Runs `afsfile worker` (the built executable, dist/afsfile, which re-executes itself for each
// device) against a private xenstored and run dir.
import { setTimeout as sleep } from 'node:timers/promises';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXE } from './exe';


export interface RunningWorker {
  readonly proc: ChildProcess;
  stderr(): string;
  /** Sends the signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => { for (const c of live) c.kill('SIGKILL'); });

/** An empty config file (a named config file must exist; the host's /etc/xen is not ours). */
function emptyConfig(runDir: string): string {
  const f = path.join(path.dirname(runDir), 'afsfile.conf');
  if (!fs.existsSync(f)) fs.writeFileSync(f, '# test: defaults only\n');
  return f;
}

export function workerEnv(socketPath: string, runDir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    XENSTORED_PATH: socketPath,
    AFSFILE_RUN_DIR: runDir,
    // Simulated guests (src/sim, --platform sim) live here.
    AFSFILE_SIM_DIR: path.join(path.dirname(runDir), 'sim'),
    AFSFILE_CONFIG: emptyConfig(runDir),
    ...(process.env.DEBUG ? { DEBUG: process.env.DEBUG } : {}),
    ...extra,
  };
}

/** `exe`: another copy of dist/afsfile (the supervisor re-executes whatever is at its path). */
export async function startWorker(
  socketPath: string,
  runDir: string,
  args: string[] = [],
  exe = EXE,
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<RunningWorker> {
  const proc = spawn(exe, ['worker', ...(args.includes('--platform') ? [] : ['--platform', 'sim']), ...args], {
    env: workerEnv(socketPath, runDir, extraEnv), stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  let err = '';
  proc.stdout?.on('data', (d) => (err += d));
  proc.stderr?.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => { live.delete(proc); r(code); }));
  const status = path.join(runDir, 'status/worker.json');
  const deadline = Date.now() + 10_000;
  const ready = (): boolean => {
    try {
      return (JSON.parse(fs.readFileSync(status, 'utf8')) as { pid?: number }).pid === proc.pid;
    } catch {
      return false;
    }
  };
  // A worker killed outright leaves its status file behind: wait for this one's.
  while (!ready()) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`worker did not start:\n${err}`);
    await sleep(10);
  }
  return {
    proc,
    stderr: () => err,
    stop: async (signal = 'SIGTERM') => { proc.kill(signal); return exited; },
  };
}
