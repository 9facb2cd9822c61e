// The image lock's hand-on between a device host and the next worker's process of one of its
// devices (device-lock.ts, device-child.ts). A process serving one device is told by SIGTERM
// that its successor adopted the lock; a device host serves other devices whose successors may
// not have adopted theirs yet, so a successor says it for its device alone: it writes
// <status dir>/<device>.adopted naming the host's pid, and the host's device, once it sees
// the file, ends its hand-on, writes its status file for the last time and removes the file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LockHolder } from '../image/lock';
import { pidAlive, statusDir } from './status-file';

/** How often a handing-on device host looks for its successor's word (only while handing on). */
const POLL_MS = 100;
/** How long a successor waits for the host's device to let go (as for a process's exit). */
const RETIRE_WAIT_MS = 10_000;

export function adoptionFile(runDir: string, name: string): string {
  return path.join(statusDir(runDir), `${name}.adopted`);
}

/** Resolves when a successor says it adopted this device's lock from this process; stops
 * looking when `until` resolves. */
export async function watchAdoption(runDir: string, name: string, until: Promise<void>): Promise<void> {
  let over = false;
  void until.then(() => (over = true));
  const file = adoptionFile(runDir, name);
  while (!over) {
    let who: string | undefined;
    try {
      who = fs.readFileSync(file, 'utf8');
    } catch {
      who = undefined;
    }
    if (who?.trim() === String(process.pid)) return;
    await sleep(POLL_MS);
  }
  throw new Error('hand-on over');
}

/** The successor's side: the lock is adopted; the host's device may end (and must have ended,
 * its last status written, before this device serves the ring). */
export async function retireHosted(
  runDir: string, name: string, prev: LockHolder, stopping: () => boolean,
): Promise<void> {
  const file = adoptionFile(runDir, name);
  const tmp = `${file}.${process.pid}`;
  fs.writeFileSync(tmp, String(prev.pid));
  fs.renameSync(tmp, file);
  const deadline = Date.now() + RETIRE_WAIT_MS;
  while (fs.existsSync(file) && pidAlive(prev.pid, prev.pidStart) && Date.now() < deadline && !stopping()) {
    await sleep(20);
  }
  fs.rmSync(file, { force: true });
}
