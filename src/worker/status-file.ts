// Status JSON files under <run-dir>/status/ (DESIGN contracts, Files): each process writes its
// own, to a temp name then rename, so a reader never sees half a file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { processStart, sameProcess } from '../util/proc-identity';
import { VERSION } from '../version';
import { STATUS_SCHEMA } from './status-schema';

export function statusDir(runDir: string): string {
  return path.join(runDir, 'status');
}

export function writeStatus(runDir: string, name: string, fields: Record<string, unknown>): void {
  const dir = statusDir(runDir);
  // Not world-readable: image paths and guest names are the administrator's business.
  fs.mkdirSync(dir, { recursive: true, mode: 0o750 });
  const file = path.join(dir, `${name}.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  // pidStart: a reader can tell this process from a later one that reuses its pid.
  const body = { schema: STATUS_SCHEMA, version: VERSION, pid: process.pid, pidStart: processStart(process.pid), updated: new Date().toISOString(), ...fields };
  fs.writeFileSync(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o640 });
  fs.renameSync(tmp, file);
}

export function removeStatus(runDir: string, name: string): void {
  fs.rmSync(path.join(statusDir(runDir), `${name}.json`), { force: true });
}

export function readStatusFiles(runDir: string): Map<string, Record<string, unknown>> {
  return readStatusDir(runDir).files;
}

/** Every status file that is a JSON object; the others (half-written, hand-edited, not
 * ours) are listed in `skipped` with why, never thrown. */
export function readStatusDir(runDir: string): { files: Map<string, Record<string, unknown>>; skipped: string[] } {
  const files = new Map<string, Record<string, unknown>>();
  const skipped: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(statusDir(runDir));
  } catch {
    return { files, skipped };
  }
  for (const n of names.sort()) {
    if (!n.endsWith('.json')) continue;
    let j: unknown;
    try {
      j = JSON.parse(fs.readFileSync(path.join(statusDir(runDir), n), 'utf8'));
    } catch (e) {
      // Being replaced right now, or damaged.
      skipped.push(`${n}: ${(e as Error).message}`);
      continue;
    }
    if (typeof j !== 'object' || j === null || Array.isArray(j)) { skipped.push(`${n}: not a JSON object`); continue; }
    files.set(n.slice(0, -5), j as Record<string, unknown>);
  }
  return { files, skipped };
}

/** Why the run dir must not be used, if it exists and others could write into it (they could
 * plant status files, or a credential cache); undefined when it is fine or does not exist. */
export function runDirProblem(runDir: string): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(runDir);
  } catch {
    return undefined;
  }
  const uid = process.geteuid?.() ?? 0;
  if (st.isSymbolicLink()) return `${runDir} is a symbolic link`;
  if (!st.isDirectory()) return `${runDir} is not a directory`;
  if (st.uid !== uid) return `${runDir} belongs to uid ${st.uid}, not to this user (uid ${uid})`;
  const who = st.mode & 0o002 ? 'every user' : 'its group';
  if (st.mode & 0o022) return `${runDir} is writable by ${who} (mode ${(st.mode & 0o7777).toString(8)})`;
  return undefined;
}

/**
 * Whether a status file's process still runs: its pid is alive and, when the file says when
 * it started (pidStart), it is the same process, not a later one that got the pid.
 */
export function pidAlive(pid: unknown, pidStart?: unknown): boolean {
  return sameProcess(pid, pidStart);
}
