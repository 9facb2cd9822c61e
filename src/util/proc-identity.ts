// Telling a process from a later one that got its pid: a pid and the process's start time
// (field 22 of /proc/<pid>/stat, in clock ticks since boot: proc(5)) name one process for the
// life of the system. A status file or AFSFILE_RENEW_PID whose pid was reused then does not
// pass for the process it names.
import * as fs from 'node:fs';

/** The start time of process `pid` (a decimal string), or undefined when there is none. */
export function processStart(pid: number): string | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces or ')': fields 3.. follow
  // the last ')'. starttime is field 22, so the 20th after it.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const start = rest[19];
  return start !== undefined && /^\d+$/.test(start) ? start : undefined;
}

/**
 * Whether `pid` is a live process and, when `start` is given, the same one that recorded it.
 * Without `start` (a file from an older version): alive is all that can be said.
 */
export function sameProcess(pid: unknown, start: unknown): boolean {
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return false;
  const now = processStart(pid);
  if (now === undefined) return false;
  return typeof start !== 'string' || start === now;
}
