// `afsfile status [--json]`: merges the status files every process writes under
// <run-dir>/status (worker.json, dev-<domid>-<devid>.json, renew.json) into one view.
import type { ParsedArgs } from '../cli/parse';
import { pidAlive, readStatusFiles, statusDir } from './status-file';

type Json = Record<string, unknown>;

export interface MergedStatus {
  runDir: string;
  worker: (Json & { running: boolean }) | null;
  devices: Array<Json & { running: boolean }>;
  renew: (Json & { running: boolean }) | null;
}

export function mergeStatus(runDir: string): MergedStatus {
  const files = readStatusFiles(runDir);
  const live = (j: Json | undefined): (Json & { running: boolean }) | null => (j ? { ...j, running: pidAlive(j.pid) } : null);
  const worker = live(files.get('worker'));
  const supervisorView = new Map<string, Json>();
  for (const d of (worker?.devices as Json[] | undefined) ?? []) supervisorView.set(String(d.backend), d);
  const devices: Array<Json & { running: boolean }> = [];
  for (const [name, j] of files) {
    if (!name.startsWith('dev-')) continue;
    const sup = supervisorView.get(String(j.backend));
    supervisorView.delete(String(j.backend));
    devices.push({ ...j, running: pidAlive(j.pid), phase: sup?.phase, restarts: sup?.restarts ?? j.restarts, message: sup?.message });
  }
  // Devices the supervisor knows that have no process of their own (refused, failed, restarting).
  for (const sup of supervisorView.values()) devices.push({ ...sup, running: false });
  return { runDir, worker, devices, renew: live(files.get('renew')) };
}

function describe(m: MergedStatus): string {
  const lines: string[] = [];
  const w = m.worker;
  if (!w) lines.push(`worker: not running (no ${statusDir(m.runDir)}/worker.json)`);
  else lines.push(`worker: ${w.running ? `running, pid ${String(w.pid)}` : `not running (pid ${String(w.pid)} gone)`}, since ${String(w.started ?? '?')}, xenstore ${String(w.xenstore ?? '?')}`);
  if (!m.devices.length) lines.push('devices: none');
  for (const d of m.devices) {
    const id = `${String(d.domid)}/${String(d.devid)}`;
    const io = d.bytesRead !== undefined ? `, read ${fmtBytes(Number(d.bytesRead))}, written ${fmtBytes(Number(d.bytesWritten))}, in flight ${String(d.inFlight ?? 0)}` : '';
    const fsync = d.lastFsync ? `, last fsync ${String(d.lastFsync)}` : '';
    const restarts = Number(d.restarts ?? 0) ? `, ${String(d.restarts)} restart(s)` : '';
    const ioPath = d.ioPath !== undefined ? `, I/O through ${String(d.ioPath)}` : '';
    const state = d.state ?? d.phase ?? '?';
    lines.push(`device ${id} ${String(d.image ?? '?')}: ${String(state)}${d.running ? '' : ' (no process)'}${io}${ioPath}${fsync}${restarts}`);
    if (d.message) lines.push(`  ${String(d.message)}`);
    const errs = (d.errors as string[] | undefined) ?? [];
    for (const e of errs.slice(-3)) lines.push(`  ${e}`);
  }
  const r = m.renew;
  if (!r) lines.push('renew: no status/renew.json (not running, or started without a keytab)');
  else if (!r.running) lines.push(`renew: not running (pid ${String(r.pid)} gone; last update ${String(r.updated)})`);
  else if (r.managed === false) lines.push('renew: no keytab configured; tickets and tokens are not managed');
  else lines.push(`renew: ${String(r.principal ?? '?')}, ticket until ${String(r.ticketExpires ?? 'none')}${Number(r.failures ?? 0) ? `, ${String(r.failures)} failure(s)` : ''}`);
  return `${lines.join('\n')}\n`;
}

function fmtBytes(n: number): string {
  if (!Number.isFinite(n)) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export async function statusMain(args: ParsedArgs): Promise<number> {
  const m = mergeStatus(args.string('run-dir'));
  process.stdout.write(args.bool('json') ? `${JSON.stringify(m, null, 2)}\n` : describe(m));
  // Like `systemctl status`: non-zero when the worker is not running.
  return m.worker?.running ? 0 : 3;
}
