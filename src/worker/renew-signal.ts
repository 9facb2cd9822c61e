// Asking renew to refresh the tokens now (DESIGN contracts, Signals: SIGALRM, as k5start), but
// only renew: AFSFILE_RENEW_PID may name a process that ended, its pid since given to another
// (SIGALRM's default action would kill that one). AFSFILE_RENEW_START is renew's start time;
// without it (an older renew) the process must at least run this same executable.
import * as fs from 'node:fs';
import { processStart } from '../util/proc-identity';

export type RenewSignal = { ok: true; pid: number } | { ok: false; pid: number; why: string };

/** Sends SIGALRM to renew if env names it and it is still that process; undefined: none named. */
export function signalRenew(
  env: NodeJS.ProcessEnv,
  kill: (pid: number, sig: NodeJS.Signals) => void = process.kill,
): RenewSignal | undefined {
  const pid = Number(env.AFSFILE_RENEW_PID);
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  const start = processStart(pid);
  if (start === undefined) return { ok: false, pid, why: 'no such process (renew ended?)' };
  const want = env.AFSFILE_RENEW_START;
  if (want) {
    if (want !== start) return { ok: false, pid, why: 'that pid is now another process (renew ended)' };
  } else if (!sameExecutable(pid)) {
    return { ok: false, pid, why: 'that process does not run afsfile' };
  }
  try {
    kill(pid, 'SIGALRM');
    return { ok: true, pid };
  } catch (e) {
    return { ok: false, pid, why: (e as NodeJS.ErrnoException).code ?? String(e) };
  }
}

function sameExecutable(pid: number): boolean {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`) === fs.readlinkSync('/proc/self/exe');
  } catch {
    return false;
  }
}
