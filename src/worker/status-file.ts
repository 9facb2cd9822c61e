// Status JSON files under <run-dir>/status/ (DESIGN contracts, Files): each process writes its
// own, to a temp name then rename, so a reader never sees half a file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { VERSION } from '../version';

export function statusDir(runDir: string): string {
  return path.join(runDir, 'status');
}

export function writeStatus(runDir: string, name: string, fields: Record<string, unknown>): void {
  const dir = statusDir(runDir);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const file = path.join(dir, `${name}.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  const body = { version: VERSION, pid: process.pid, updated: new Date().toISOString(), ...fields };
  fs.writeFileSync(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o644 });
  fs.renameSync(tmp, file);
}

export function removeStatus(runDir: string, name: string): void {
  fs.rmSync(path.join(statusDir(runDir), `${name}.json`), { force: true });
}

export function readStatusFiles(runDir: string): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  let names: string[];
  try {
    names = fs.readdirSync(statusDir(runDir));
  } catch {
    return out;
  }
  for (const n of names.sort()) {
    if (!n.endsWith('.json')) continue;
    try {
      out.set(n.slice(0, -5), JSON.parse(fs.readFileSync(path.join(statusDir(runDir), n), 'utf8')) as Record<string, unknown>);
    } catch {
      // Being replaced right now, or not ours: skip it.
    }
  }
  return out;
}

/** Whether a status file's pid is a live process (signal 0 probes without touching it). */
export function pidAlive(pid: unknown): boolean {
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
