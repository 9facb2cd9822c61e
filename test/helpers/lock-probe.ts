// What a lock test looks at on the host: a device's status file (its lock state, as the worker
// publishes it) and the kernel's own flock table.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The fields of status/dev-D-V.json the lock tests read. */
export type DevFile = {
  pid: number;
  hosted?: boolean;
  handingOn?: boolean;
  lock?: { state: string; mode?: string; fd: number | null };
};

/** The device's status file in the worker's run directory, or undefined while it is absent. */
export function devFile(rig: { runDir: string }, p: { domid: number; devid: number }): DevFile | undefined {
  try {
    const file = path.join(rig.runDir, `status/dev-${p.domid}-${p.devid}.json`);
    return JSON.parse(fs.readFileSync(file, 'utf8')) as DevFile;
  } catch {
    return undefined;
  }
}

/** The flock locks on the image's inode (/proc/locks: "1: FLOCK ADVISORY WRITE pid maj:min:ino ..."). */
export function flocks(img: string): string[] {
  const ino = fs.statSync(img).ino;
  return fs.readFileSync('/proc/locks', 'utf8').split('\n')
    .filter((l) => / FLOCK /.test(l) && l.split(/\s+/)[5]?.endsWith(`:${ino}`));
}
