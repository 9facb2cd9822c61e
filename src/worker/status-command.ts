// `afsfile status [DOMID] [--json]`: merges the status files every process writes under
// <run-dir>/status (worker.json, dev-<domid>-<devid>.json, renew.json) into one view
// (status-schema.ts), shown as a table in the manner of `xl block-list`.
import { UsageError } from '../cli/errors';
import type { ParsedArgs } from '../cli/parse';
import { devidToVdev } from '../xen/vdev';
import { type DeviceView, STATUS_SCHEMA, type StatusReport } from './status-schema';
import { pidAlive, readStatusDir, runDirProblem, statusDir } from './status-file';

type Json = Record<string, unknown>;

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const obj = (v: unknown): Json => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {});

function deviceView(file: Json, sup: Json, names: ReadonlyMap<number, string>): DeviceView {
  const domid = num(file.domid ?? sup.domid);
  const devid = num(file.devid ?? sup.devid);
  const req = obj(file.requests);
  const lat = obj(file.latency);
  const stalls = obj(file.stalls);
  const pg = file.persistentGrants === undefined ? null : obj(file.persistentGrants);
  const phase = str(sup.phase);
  const running = pidAlive(file.pid, file.pidStart);
  const state = str(file.state) ?? phase ?? '?';
  const readOnly = typeof file.readOnly === 'boolean' ? file.readOnly : null;
  const writable = typeof sup.writable === 'boolean' ? sup.writable : readOnly === null ? null : !readOnly;
  const bytesRead = num(file.bytesRead);
  const bytesWritten = num(file.bytesWritten);
  return {
    backend: String(file.backend ?? sup.backend ?? '?'),
    domid, devid, vdev: devidToVdev(devid), domain: names.get(domid) ?? null,
    image: str(file.image) ?? str(sup.image),
    mode: writable === null ? null : writable ? 'w' : 'r',
    state, phase, running,
    failed: phase === 'failed' || phase === 'refused' || state === 'failed',
    inFlight: num(file.inFlight),
    requests: {
      read: num(req.read), write: num(req.write), flush: num(req.flush) + num(req.barrier),
      discard: num(req.discard), indirect: num(req.indirect),
    },
    sectors: { read: Math.floor(bytesRead / 512), write: Math.floor(bytesWritten / 512) },
    bytesRead, bytesWritten,
    errors: num(file.ioErrors),
    restarts: num(sup.restarts ?? file.restarts),
    lastFsync: str(file.lastFsync),
    latency: Array.isArray(lat.boundsMs) && Array.isArray(lat.counts)
      ? { boundsMs: lat.boundsMs.map(num), counts: lat.counts.map(num), sumMs: num(lat.sumMs) }
      : null,
    stalls: { slot: num(stalls.slot), memory: num(stalls.memory) },
    held: num(file.held),
    persistentGrants: pg === null ? null : {
      mapped: num(pg.mapped), hits: num(pg.hits), direct: num(pg.direct),
      mapFailures: num(pg.mapFailures), overLimit: num(pg.overLimit),
    },
    message: str(sup.message),
    recentErrors: (Array.isArray(file.errors) ? file.errors : [])
      .filter((e): e is string => typeof e === 'string').slice(-3),
    ioPath: str(file.ioPath),
    identity: str(sup.identity) ?? str(file.identity),
    lock: lockView(file.lock),
  };
}

function lockView(v: unknown): DeviceView['lock'] {
  const l = obj(v);
  const state = str(l.state);
  if (state === null) return null;
  const keeper = typeof l.keeper === 'number' && Number.isInteger(l.keeper) ? l.keeper : null;
  return {
    state, mode: str(l.mode) ?? '?', reach: str(l.reach) ?? '?', since: str(l.since), note: str(l.note), keeper,
  };
}

/**
 * An AFS lock is a lease the client extends (extensions are not visible from here): kAFS every
 * 150 s with the key of the open file that took it, so the device takes it again after each
 * token renewal; the OpenAFS client every minute with its own credentials (lock-fs.ts
 * lockFollowsKey), for a lock its keeper process holds. When it was last taken.
 */
function leaseLine(d: DeviceView, now: number): string | null {
  const l = d.lock;
  if (!l || l.reach !== 'afs' || (l.state !== 'held' && l.state !== 'adopted') || !l.since) return null;
  const taken = `image lock: an AFS lease, ${l.state === 'held' ? 'taken' : 'adopted'} ${ago(l.since, now)} `;
  if (l.keeper !== null) {
    return `${taken}(held by its lock keeper, process ${l.keeper}; extended by the OpenAFS client with its own ` +
      'credentials)';
  }
  return `${taken}(extended by the client: kAFS with the key it was taken with, so it is taken again after each ` +
    'token renewal; OpenAFS with its own credentials)';
}

/** The Lock column: "ex held", "sh adopted", "ex deferred", "none". */
function lockCell(d: DeviceView): string {
  const l = d.lock;
  if (!l) return '-';
  if (l.state === 'none') return 'none';
  return `${l.mode === 'exclusive' ? 'ex' : 'sh'} ${l.state}`;
}

export function mergeStatus(runDir: string, names: ReadonlyMap<number, string> = new Map()): StatusReport {
  const { files, skipped } = readStatusDir(runDir);
  const live = (j: Json | undefined): (Json & { running: boolean }) | null =>
    (j ? { ...j, running: pidAlive(j.pid, j.pidStart) } : null);
  const worker = live(files.get('worker'));
  const supervisorView = new Map<string, Json>();
  const supDevices = worker?.devices;
  if (supDevices !== undefined && !Array.isArray(supDevices)) skipped.push('worker.json: "devices" is not a list');
  for (const d of Array.isArray(supDevices) ? supDevices : []) {
    const o = obj(d);
    if (typeof o.backend === 'string') supervisorView.set(o.backend, o);
  }
  const devices: DeviceView[] = [];
  for (const [name, j] of files) {
    if (!name.startsWith('dev-')) continue;
    const key = String(j.backend);
    devices.push(deviceView(j, supervisorView.get(key) ?? {}, names));
    supervisorView.delete(key);
  }
  // Devices the supervisor knows that have no process of their own (refused, failed, restarting).
  for (const sup of supervisorView.values()) devices.push(deviceView({}, sup, names));
  devices.sort((a, b) => a.domid - b.domid || a.devid - b.devid);
  const identities = [...files].filter(([name]) => name.startsWith('identity-')).map(([name, j]) => {
    const label = name.slice('identity-'.length);
    const served = devices.filter((d) => d.identity === label).map((d) => `${d.domid}/${d.vdev}`);
    return { ...j, label, running: pidAlive(j.pid, j.pidStart), devices: served };
  }).sort((a, b) => a.label.localeCompare(b.label));
  return { schema: STATUS_SCHEMA, runDir, worker, devices, renew: live(files.get('renew')), identities, skipped };
}

/** "3 s ago", "2 min ago", "1 h ago". */
export function ago(iso: string | null, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (!Number.isFinite(s)) return '?';
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const cell = (c: string, i: number, r: string[]): string => (i === r.length - 1 ? c : c.padEnd(widths[i]!));
  const line = (r: string[]): string => r.map((c, i) => cell(c, i, r)).join('  ').trimEnd();
  return `${rows.map(line).join('\n')}\n`;
}

/** Budget stalls are worth a line when there were any (blkback's oo_req in sysfs). */
function stallLine(d: DeviceView): string | null {
  const { slot, memory } = d.stalls;
  if (!slot && !memory) return null;
  return `budget stalls: ${slot} request(s) waited for a free slot (max-requests), ` +
    `${memory} for buffer memory (max-inflight)`;
}

/** Only for a device that offers persistent grants (AFSFILE_PERSISTENT). */
function persistentLine(d: DeviceView): string | null {
  const p = d.persistentGrants;
  if (p === null) return null;
  return `persistent grants: ${p.mapped} mapped, ${p.hits} segment(s) copied by memcpy, ${p.direct} read(s) ` +
    `straight into guest pages, ${p.mapFailures} map(s) refused, ${p.overLimit} past the limit`;
}

function heldLine(d: DeviceView): string | null {
  return d.held ? `${d.held} request(s) held: a transient image error is being retried (hold-timeout)` : null;
}

function describe(m: StatusReport, now = Date.now()): string {
  const lines: string[] = [];
  const w = m.worker;
  if (!w) lines.push(`worker: not running (no ${statusDir(m.runDir)}/worker.json)`);
  else {
    const how = w.running ? `running, pid ${String(w.pid)}` : `not running (pid ${String(w.pid)} gone)`;
    lines.push(`worker: ${how}, since ${String(w.started ?? '?')}, xenstore ${String(w.xenstore ?? '?')}`);
  }
  let text = `${lines.join('\n')}\n`;
  if (!m.devices.length) text += 'devices: none\n';
  else {
    const rows = [['Domain', 'Vdev', 'Mode', 'State', 'Reads', 'Writes', 'InFlight', 'Errors', 'Restarts', 'LastFsync',
      'Lock', 'Image']];
    for (const d of m.devices) {
      rows.push([
        d.domain ? `${d.domain}(${d.domid})` : String(d.domid), d.vdev, d.mode ?? '?',
        `${d.state}${d.failed && d.state !== d.phase ? `/${String(d.phase)}` : ''}` +
          (d.running || d.failed ? '' : ' (no process)'),
        String(d.requests.read), String(d.requests.write), String(d.inFlight), String(d.errors), String(d.restarts),
        ago(d.lastFsync, now), lockCell(d), d.image ?? '?',
      ]);
    }
    text += table(rows);
    for (const d of m.devices) {
      // The fallback is worth a line (io_uring, the normal case, is not).
      const io = d.ioPath !== null && d.ioPath !== 'io_uring' ? `image I/O through the ${d.ioPath}` : null;
      const lock = d.lock && d.lock.state !== 'held' && d.lock.state !== 'adopted' && d.lock.note
        ? `image lock ${d.lock.state}: ${d.lock.note}` : null;
      const more = [d.message, io, lock, leaseLine(d, now), stallLine(d), heldLine(d), persistentLine(d)];
      for (const l of [...more, ...d.recentErrors]) {
        if (l) text += `  ${d.domid}/${d.vdev}: ${l}\n`;
      }
    }
  }
  const r = m.renew;
  if (!r) text += 'renew: no status/renew.json (not running, or started without a keytab)\n';
  else if (!r.running) text += `renew: not running (pid ${String(r.pid)} gone; last update ${String(r.updated)})\n`;
  else if (r.managed === false) text += 'renew: no keytab configured; tickets and tokens are not managed\n';
  else {
    const failures = num(r.failures) ? `, ${String(r.failures)} failure(s)` : '';
    text += `renew: ${String(r.principal ?? '?')}, ticket until ${String(r.ticketExpires ?? 'none')}${failures}\n`;
  }
  for (const i of m.identities) {
    const tokens = Object.entries(obj(i.tokenExpires)).map(([cell, exp]) => `${cell} until ${String(exp)}`).join(', ');
    const err = obj(i.lastError);
    const failing = num(i.failures) ? `; failing (${String(i.failures)}x): ${String(err.message ?? '?')}` : '';
    const who = String(i.principal ?? 'principal not known yet');
    text += `identity ${i.label}: ${i.running ? '' : 'not running; '}${who}, ` +
      `tokens ${tokens || 'none'}, last renewal ${ago(str(i.lastSuccess), now)}${failing}; ` +
      `devices ${i.devices.join(' ') || 'none'}\n`;
  }
  return text;
}

/** Guest names from XenStore, best effort within half a second (status works without it). */
async function domainNames(domids: readonly number[], env: NodeJS.ProcessEnv): Promise<Map<number, string>> {
  const names = new Map<number, string>();
  if (!domids.length) return names;
  const { connectXenStore } = await import('../xen/xenstore-client');
  const deadline = new Promise<void>((r) => setTimeout(r, 500).unref());
  const work = (async () => {
    const xs = await connectXenStore({ env, reconnect: false });
    try {
      for (const id of domids) {
        const n = await xs.tryRead(`/local/domain/${id}/name`);
        if (n) names.set(id, n);
      }
    } finally {
      xs.close();
    }
  })().catch(() => undefined);
  await Promise.race([work, deadline]);
  return names;
}

/** Exit status: 0 fine, 1 a device failed, 3 the worker is not running (as systemctl status). */
export async function statusMain(args: ParsedArgs, env: NodeJS.ProcessEnv): Promise<number> {
  const [domText, ...extra] = args.positional;
  if (extra.length || (domText !== undefined && !/^\d+$/.test(domText))) {
    throw new UsageError(`expected [DOMID], got "${args.positional.join(' ')}"`, 'status');
  }
  const runDir = args.string('run-dir');
  const problem = runDirProblem(runDir);
  if (problem) process.stderr.write(`afsfile: warning: ${problem}: its status files may not be afsfile's own\n`);
  const first = mergeStatus(runDir);
  const ids = [...new Set(first.devices.map((d) => d.domid))];
  const all = mergeStatus(runDir, await domainNames(ids, env));
  const m: StatusReport = domText === undefined
    ? all
    : { ...all, devices: all.devices.filter((d) => d.domid === Number(domText)) };
  for (const s of m.skipped) process.stderr.write(`afsfile: skipped status file ${s}\n`);
  process.stdout.write(args.bool('json') ? `${JSON.stringify(m, null, 2)}\n` : describe(m));
  if (!m.worker?.running) return 3;
  return m.devices.some((d) => d.failed) ? 1 : 0;
}
