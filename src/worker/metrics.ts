// The node_exporter textfile (--metrics-file): the status files as Prometheus metrics, so
// Prometheus users get them from the node_exporter they already run, without a new daemon.
// Format: the Prometheus text exposition format 0.0.4 (prometheus/docs
// content/docs/instrumenting/exposition_formats.md); node_exporter's textfile collector reads
// every *.prom file of its --collector.textfile.directory and wants each written to a temporary
// name and renamed (node_exporter README, "Textfile Collector").
//
// Per device: labels kind, domid, vdev, identity (the config label of the identity whose
// tokens open its image; "host" for the host's); per identity: renew's tickets and tokens, from
// status/renew.json ("host") and status/identity-<label>.json (src/renew/status.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DeviceView, StatusReport } from './status-schema';
import { mergeStatus } from './status-command';
import { pidAlive, readStatusDir } from './status-file';

/** How often the supervisor looks whether the figures moved (the file changes only then). */
export const METRICS_INTERVAL_MS = 5000;

type Labels = Record<string, string>;
type Kind = 'counter' | 'gauge';
type Put = (l: Labels, v: number) => void;
type Json = Record<string, unknown>;

/** One identity's renew status, as the metrics need it. */
export interface RenewView {
  readonly identity: string;
  readonly running: boolean;
  readonly managed: boolean;
  readonly principal: string | null;
  /** Seconds since the epoch, or null when not known. */
  readonly ticketExpires: number | null;
  /** Per cell: seconds since the epoch (0: expired), or null: present, expiry unknown (kAFS). */
  readonly tokens: ReadonlyMap<string, number | null>;
  readonly failures: number;
  readonly renewals: number;
  readonly lastSuccess: number | null;
}

const esc = (v: string): string =>
  v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const labelText = (l: Labels): string => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};
/** Go's strconv float formatting is what Prometheus parses; JS numbers print compatibly. */
const val = (n: number): string =>
  (Number.isNaN(n) ? 'NaN' : n === Infinity ? '+Inf' : n === -Infinity ? '-Inf' : String(n));
const secs = (iso: string | null | undefined): number | null => {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t / 1000 : null;
};

class Out {
  private readonly lines: string[] = [];
  private readonly seen = new Set<string>();
  family(name: string, type: Kind | 'histogram', help: string): (labels: Labels, v: number, suffix?: string) => void {
    if (!this.seen.has(name)) {
      this.seen.add(name);
      this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    }
    return (labels, v, suffix = '') => { this.lines.push(`${name}${suffix}${labelText(labels)} ${val(v)}`); };
  }
  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

function deviceLabels(d: DeviceView, identity: string): Labels {
  return { kind: /\/backend\/vbd3\//.test(d.backend) ? 'vbd3' : 'vbd', domid: String(d.domid), vdev: d.vdev, identity };
}

/**
 * The metrics text of a status report and the renew views. Nothing in it changes unless a
 * figure does (no time of writing), so a rewrite only on change leaves the file alone while
 * the host is idle; node_exporter's own node_textfile_mtime_seconds tells when it last moved.
 */
export function metricsText(
  report: StatusReport, renews: readonly RenewView[], identities: ReadonlyMap<string, string> = new Map(),
): string {
  const o = new Out();
  const up = o.family('afsfile_worker_up', 'gauge', 'The afsfile worker (supervisor) runs.');
  up({}, report.worker?.running ? 1 : 0);
  // Families in a fixed order, each with its samples together (the format wants them grouped).
  const devices = report.devices.map((d) =>
    ({ d, l: deviceLabels(d, identities.get(d.backend) ?? 'host') }));
  const info = o.family('afsfile_device_info', 'gauge',
    'One per device: its image and mode (join on kind, domid, vdev).');
  for (const { d, l } of devices) info({ ...l, image: d.image ?? '', mode: d.mode ?? '' }, 1);
  const each = (name: string, type: Kind, help: string, f: (d: DeviceView, l: Labels, put: Put) => void): void => {
    if (!devices.length) return;
    const put = o.family(name, type, help);
    for (const { d, l } of devices) f(d, l, put);
  };
  each('afsfile_device_up', 'gauge', 'The device has a running process.',
    (d, l, put) => put(l, d.running ? 1 : 0));
  each('afsfile_device_failed', 'gauge', 'The device failed or was refused (afsfile status exits 1).',
    (d, l, put) => put(l, d.failed ? 1 : 0));
  each('afsfile_device_requests_total', 'counter', 'Requests by operation (xen-blkback rd_req, wr_req, f_req, ds_req).',
    (d, l, put) => {
      for (const op of ['read', 'write', 'flush', 'discard'] as const) put({ ...l, op }, d.requests[op]);
    });
  each('afsfile_device_indirect_requests_total', 'counter', 'Requests that came as BLKIF_OP_INDIRECT.',
    (d, l, put) => put(l, d.requests.indirect));
  each('afsfile_device_bytes_total', 'counter', 'Bytes read from and written to the image for the guest.',
    (d, l, put) => {
      put({ ...l, direction: 'read' }, d.bytesRead);
      put({ ...l, direction: 'write' }, d.bytesWritten);
    });
  each('afsfile_device_errors_total', 'counter', 'Requests answered with an error.',
    (d, l, put) => put(l, d.errors));
  each('afsfile_device_in_flight_requests', 'gauge', 'Requests taken and not yet answered.',
    (d, l, put) => put(l, d.inFlight));
  each('afsfile_device_held_requests', 'gauge', 'Requests held while a transient image error is retried.',
    (d, l, put) => put(l, d.held));
  each('afsfile_device_budget_stalls_total', 'counter',
    'Requests that waited for a free request slot (budget="slot", xen-blkback oo_req) ' +
      'or buffer memory (budget="memory").',
    (d, l, put) => {
      put({ ...l, budget: 'slot' }, d.stalls.slot);
      put({ ...l, budget: 'memory' }, d.stalls.memory);
    });
  each('afsfile_device_restarts_total', 'counter', 'Restarts of the device process.',
    (d, l, put) => put(l, d.restarts));
  each('afsfile_device_last_fsync_timestamp_seconds', 'gauge', 'When the image was last made durable (0: never).',
    (d, l, put) => put(l, secs(d.lastFsync) ?? 0));
  const withLatency = devices.filter(({ d }) => d.latency !== null);
  if (withLatency.length) {
    const h = o.family('afsfile_device_request_duration_seconds', 'histogram',
      'Time from taking a request to answering it.');
    for (const { d, l } of withLatency) {
      const { boundsMs, counts, sumMs } = d.latency!;
      let cum = 0;
      boundsMs.forEach((b, i) => { cum += counts[i] ?? 0; h({ ...l, le: val(b / 1000) }, cum, '_bucket'); });
      const total = counts.reduce((a, b) => a + b, 0);
      h({ ...l, le: '+Inf' }, total, '_bucket');
      h(l, sumMs / 1000, '_sum');
      h(l, total, '_count');
    }
  }
  if (renews.length) {
    const up = o.family('afsfile_renew_up', 'gauge', 'The identity\'s renew process runs.');
    for (const r of renews) up({ identity: r.identity }, r.running ? 1 : 0);
    const managed = renews.filter((r) => r.managed);
    type Row = readonly [RenewView, number];
    const put = (name: string, type: Kind, help: string, f: (r: RenewView) => number | null,
      extra?: (r: RenewView) => Labels): void => {
      const rows = managed.map((r) => [r, f(r)] as const).filter((x): x is Row => x[1] !== null);
      if (!rows.length) return;
      const fam = o.family(name, type, help);
      for (const [r, v] of rows) fam({ identity: r.identity, ...extra?.(r) }, v);
    };
    put('afsfile_renew_ticket_expiry_timestamp_seconds', 'gauge', 'When the identity\'s Kerberos ticket expires.',
      (r) => r.ticketExpires, (r) => ({ principal: r.principal ?? '' }));
    const tokenRows = managed.flatMap((r) =>
      [...r.tokens].filter(([, v]) => v !== null).map(([cell, v]) => ({ r, cell, v: v! })));
    if (tokenRows.length) {
      const fam = o.family('afsfile_renew_token_expiry_timestamp_seconds', 'gauge',
        'When the identity\'s AFS token for the cell expires (0: expired; absent: kAFS, which does not say).');
      for (const t of tokenRows) fam({ identity: t.r.identity, cell: t.cell }, t.v);
    }
    put('afsfile_renew_failures', 'gauge', 'Consecutive failed renewal attempts (0 after a success).',
      (r) => r.failures);
    put('afsfile_renew_renewals_total', 'counter', 'Successful renewals since renew started.', (r) => r.renewals);
    put('afsfile_renew_last_success_timestamp_seconds', 'gauge', 'When tickets and tokens were last renewed.',
      (r) => r.lastSuccess);
  }
  return o.text();
}

/** The renew views from status/renew.json ("host") and each identity's identity-<label>.json. */
export function renewViews(files: ReadonlyMap<string, Json>, alive: (j: Json) => boolean): RenewView[] {
  const out: RenewView[] = [];
  for (const [name, j] of files) {
    if (name !== 'renew' && !name.startsWith('identity-')) continue;
    const identity = typeof j.identity === 'string' ? j.identity
      : name === 'renew' ? 'host' : name.slice('identity-'.length);
    const tokens = new Map<string, number | null>();
    const t = j.tokenExpires;
    if (t && typeof t === 'object' && !Array.isArray(t)) {
      for (const [cell, v] of Object.entries(t as Json)) {
        if (v === 'expired') tokens.set(cell, 0);
        else if (typeof v === 'string') tokens.set(cell, secs(v));
      }
    }
    const n = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
    out.push({
      identity, running: alive(j), managed: j.managed !== false,
      principal: typeof j.principal === 'string' ? j.principal : null,
      ticketExpires: secs(typeof j.ticketExpires === 'string' ? j.ticketExpires : null),
      tokens, failures: n(j.failures), renewals: n(j.renewals),
      lastSuccess: secs(typeof j.lastSuccess === 'string' ? j.lastSuccess : null),
    });
  }
  return out.sort((a, b) => a.identity.localeCompare(b.identity));
}

/** Writes `text` to `file` atomically: a temporary name in the same directory, then rename. */
export function writeAtomically(file: string, text: string): void {
  // node_exporter runs as its own user (prometheus on Debian): the file must be readable by it.
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, text, { mode: 0o644 });
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** The supervisor's writer: looks every interval, writes when the text changed. */
export class MetricsWriter {
  private timer: NodeJS.Timeout | undefined;
  private last = '';
  private lastError = '';

  constructor(
    private readonly runDir: string,
    private readonly file: string,
    private readonly say: (line: string) => void,
    private readonly intervalMs = METRICS_INTERVAL_MS,
  ) {}

  start(): void {
    this.update();
    this.timer = setInterval(() => this.update(), this.intervalMs);
    this.timer.unref();
  }

  /** The worker stops: afsfile_worker_up 0, the devices' series end (their processes too). */
  stop(): void {
    clearInterval(this.timer);
    this.put(metricsText({ ...mergeStatus(this.runDir), worker: null, devices: [] }, []));
  }

  update(): void {
    const report = mergeStatus(this.runDir);
    const { files } = readStatusDir(this.runDir);
    const identities = new Map<string, string>();
    for (const [name, j] of files) {
      if (!name.startsWith('dev-') || typeof j.backend !== 'string' || typeof j.identity !== 'string') continue;
      identities.set(j.backend, j.identity);
    }
    this.put(metricsText(report, renewViews(files, (j) => pidAlive(j.pid, j.pidStart)), identities));
  }

  private put(text: string): void {
    if (text === this.last) return;
    try {
      writeAtomically(this.file, text);
      this.last = text;
      this.lastError = '';
    } catch (e) {
      const msg = `cannot write the metrics file: ${(e as Error).message}`;
      // Once per distinct error, not every interval.
      if (msg !== this.lastError) this.say(msg);
      this.lastError = msg;
    }
  }
}
