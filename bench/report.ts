// The benchmark's output: progress on stderr, a table (or --json) on stdout.
import { type Summary, spreadPct } from './stats';

export interface Row {
  section: string;
  name: string;
  unit: string;
  value: Summary;
  baseline?: { name: string; value: Summary };
  /** Per-round ratio value/baseline, summarized. */
  ratio?: Summary;
  /** "higher" when a larger value is better (throughput), "lower" for times. */
  better: 'higher' | 'lower';
  target?: string;
  /** The baseline's CPU time per request (fio: user + system of all its threads), microseconds. */
  baselineCpuUsPerRequest?: Summary;
  /** Engine rows: CPU time (all threads) per ring request, microseconds. */
  cpuUsPerRequest?: Summary;
  /** Engine rows: peak resident memory of the engine process, MiB. */
  rssMiB?: Summary;
  /** Engine rows: UV_THREADPOOL_SIZE of the engine process. */
  threadpool?: number;
  /** Engine rows (--json only): grant-copy segments per copy call, requests answered per notification to the guest. */
  batching?: { segmentsPerCopy: Summary; requestsPerNotify: Summary };
}

export function progress(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return '-';
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

export function table(rows: readonly Row[]): string {
  const head = ['section', 'measure', 'median', 'spread', 'baseline', 'base median', 'ratio (median, p10-p90)', 'target', 'cpu us/req', 'base cpu us/req', 'RSS MiB', 'pool'];
  const body = rows.map((r) => [
    r.section,
    `${r.name} [${r.unit}]`,
    fmt(r.value.median),
    `±${fmt(spreadPct(r.value))}%`,
    r.baseline?.name ?? '',
    r.baseline ? fmt(r.baseline.value.median) : '',
    r.ratio ? `${r.ratio.median.toFixed(2)}x (${r.ratio.p10.toFixed(2)}-${r.ratio.p90.toFixed(2)})` : '',
    r.target ?? '',
    r.cpuUsPerRequest ? fmt(r.cpuUsPerRequest.median) : '',
    r.baselineCpuUsPerRequest ? fmt(r.baselineCpuUsPerRequest.median) : '',
    r.rssMiB ? fmt(r.rssMiB.median) : '',
    r.threadpool !== undefined ? String(r.threadpool) : '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n') + '\n';
}
