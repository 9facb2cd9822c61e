// The processes a test started, found by parentage in /proc: a worker's device, spare and
// identity processes, so that a test ending kills exactly those (by PID), never by name.
import * as fs from 'node:fs';

/** PIDs of every living descendant of pid (children first found, then theirs). */
export function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // /proc/PID/stat: "pid (comm) state ppid ...": comm may hold spaces and parentheses.
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parentOf.set(Number(name), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const want = new Set([pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [p, pp] of parentOf) {
      if (want.has(pp) && !want.has(p)) {
        want.add(p);
        out.push(p);
        grew = true;
      }
    }
  }
  return out;
}

/** Whether pid is a living process (signal 0; EPERM cannot happen: the tests run as root). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILL to each PID that still lives (a PID that is gone is no error). */
export function killAll(pids: readonly number[]): void {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
