// The end-of-run report: stage timing table, performance anchor, JSON summary.

const fmt = (s) => (s == null ? '-' : `${s.toFixed(1)}s`);

/** Stage table with steps, as text lines. */
export function timingTable(state) {
  const rows = [['stage', 'result', 'time', 'notes']];
  rows.push(['boot (QEMU start -> dom0 /init)', state.bootAt != null ? 'ok' : 'NO', fmt(state.bootAt), '']);
  for (const s of state.stages) {
    if (s.status === 'skip' && s.reason?.startsWith('not selected')) continue; // --only
    const dur = s.begin != null && s.end != null ? s.end - s.begin : null;
    rows.push([s.name, s.status.toUpperCase(), fmt(dur), s.reason ?? '']);
    for (const step of s.steps) {
      rows.push([`  +${(step.t - s.begin).toFixed(1)}s`, '', '', step.text]);
    }
  }
  rows.push(['total (QEMU start -> XENTEST DONE)', state.doneAt != null ? 'ok' : 'NO', fmt(state.doneAt), '']);
  const w = [0, 1, 2].map((i) => Math.max(...rows.filter((r) => !r[0].startsWith('  +')).map((r) => r[i].length)));
  return rows.map((r) => (r[0].startsWith('  +')
    ? `${r[0].padEnd(w[0] + 2 + w[1] + 2 + w[2])}  ${r[3]}`
    : `${r[0].padEnd(w[0])}  ${r[1].padEnd(w[1])}  ${r[2].padStart(w[2])}  ${r[3]}`).trimEnd());
}

const METRICS = [
  ['seq_write_MBps', 'seq write, 1 MiB O_DIRECT (MB/s)'],
  ['seq_read_MBps', 'seq read, 1 MiB O_DIRECT (MB/s)'],
  ['rand_read_iops', '4 KiB random read O_DIRECT (IOPS)'],
  ['rand_write_iops', '4 KiB random write O_DIRECT (IOPS)'],
  ['buf_write_MBps', 'buffered write + fsync (MB/s)'],
  ['buf_read_MBps', 'buffered read, cache dropped (MB/s)'],
];

/** Performance anchor: the guest's numbers through blkback and afsfile, and the ratio. */
export function perfAnchor(state, base = 'baseline-blkback', test = 'afsfile-rw') {
  const b = state.stages.find((s) => s.name === base)?.metrics ?? {};
  const a = state.stages.find((s) => s.name === test)?.metrics ?? {};
  const ratios = {};
  const rows = [['guest workload (xtio, queue depth 1)', 'blkback', 'afsfile', 'afsfile/blkback']];
  for (const [key, label] of METRICS) {
    const r = typeof a[key] === 'number' && typeof b[key] === 'number' && b[key] > 0 ? a[key] / b[key] : null;
    if (r != null) ratios[key] = Number(r.toFixed(3));
    rows.push([label, String(b[key] ?? '-'), String(a[key] ?? '-'), r == null ? '-' : r.toFixed(2)]);
  }
  const w = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) => [r[0].padEnd(w[0]), r[1].padStart(w[1]), r[2].padStart(w[2]), r[3].padStart(w[3])].join('  '));
  return { lines, blkback: b, afsfile: a, ratios };
}

/**
 * Machine-readable summary of all boots. runs: one per Xen version, either
 * { xen, state, result, perf, serial, args, timeoutS } or { xen, missing, names }
 * (not prepared: its stages are listed with status "not-prepared").
 * Every stage names its group and Xen version; notRun lists the selected
 * stages whose Xen version was not selected.
 */
export function summary(runs, { ok, problems, notRun, ...extra }) {
  const stages = [];
  const boots = [];
  const performance = {};
  for (const r of runs) {
    if (r.missing) {
      boots.push({ xen: r.xen, prepared: false, reason: r.missing });
      for (const name of r.names) stages.push({ name, xen: r.xen, status: 'not-prepared', reason: r.missing });
      continue;
    }
    const { state } = r;
    boots.push({
      xen: r.xen, prepared: true, ok: r.result.ok, problems: r.result.problems,
      boot_s: state.bootAt, total_s: state.doneAt,
      attempts: state.attempts, timeout_s: r.timeoutS, serial_log: r.serial, qemu_args: r.args,
    });
    for (const s of state.stages) {
      stages.push({
        name: s.name, group: s.group, xen: r.xen, kind: s.kind, status: s.status, reason: s.reason,
        seconds: s.begin != null && s.end != null ? Number((s.end - s.begin).toFixed(2)) : null,
        steps: s.steps.map((x) => ({ at_s: Number((x.t - s.begin).toFixed(2)), text: x.text })),
        metrics: s.metrics,
      });
    }
    performance[r.xen] = { blkback: r.perf.blkback, afsfile: r.perf.afsfile, ratio_afsfile_to_blkback: r.perf.ratios };
  }
  return { ok, problems, boots, stages, not_run: notRun, performance, ...extra };
}
