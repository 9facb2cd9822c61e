// Running the command renew looks after. Node cannot exec(2) (the process keeps its threads and
// there is no execve binding), so "exec the child" here means: spawn it with stdio inherited,
// pass signals on, and exit with its status (128 + signal number if it was killed, as k5start
// and the shells report it).
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import createDebug from 'debug';
import { prio } from '../util/journal';

const debug = createDebug('afsfile:renew');

export interface ChildOptions {
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  /** Signals passed on to the child (renew itself survives them and waits for the child). */
  readonly forward: readonly NodeJS.Signals[];
  /** Called once the child runs (renew starts its loop, writes its status). */
  readonly onStart?: (pid: number) => void;
}

export interface RunningChild {
  readonly pid: number | undefined;
  /** Resolves with the exit status renew must exit with. */
  readonly exited: Promise<number>;
}

export function statusOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal ? os.constants.signals[signal] : undefined;
  return 128 + (n ?? 0);
}

export function startChild(opts: ChildOptions): RunningChild {
  const [file, ...args] = opts.argv;
  if (!file) throw new Error('startChild: empty command');
  const child = spawn(file, args, { env: opts.env, stdio: 'inherit' });
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const sig of opts.forward) {
    const h = () => {
      debug('passing %s to the child %d', sig, child.pid);
      try { child.kill(sig); } catch { /* already gone: its exit is on the way */ }
    };
    handlers.set(sig, h);
    process.on(sig, h);
  }
  const unhook = () => { for (const [sig, h] of handlers) process.off(sig, h); };
  const exited = new Promise<number>((resolve) => {
    let spawnError: NodeJS.ErrnoException | undefined;
    child.on('error', (err: NodeJS.ErrnoException) => {
      spawnError = err;
      // A spawn failure emits no exit event on some Node versions: settle here as well.
      if (child.pid === undefined) finish(null, null);
    });
    let settled = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      unhook();
      if (spawnError && child.pid === undefined) {
        const why = spawnError.code === 'ENOENT' ? 'not found' : spawnError.code === 'EACCES' ? 'permission denied' : spawnError.message;
        process.stderr.write(`${prio('err')}afsfile renew: cannot run ${file}: ${why}\n`);
        resolve(spawnError.code === 'ENOENT' ? 127 : 126);
        return;
      }
      debug('child %d exited: code %s signal %s', child.pid, code, signal);
      resolve(statusOf(code, signal));
    };
    child.on('exit', finish);
  });
  if (child.pid !== undefined) opts.onStart?.(child.pid);
  return { pid: child.pid, exited };
}
