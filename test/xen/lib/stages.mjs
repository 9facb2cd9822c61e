// The stage list (test/xen/stages.txt) and the XENTEST markers dom0 prints.
import { readFileSync } from 'node:fs';

/** Parse stages.txt: NAME KIND REQUIRES TIMEOUT DESCRIPTION per line. */
export function readStages(path) {
  const stages = [];
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [name, kind, requires, timeout, ...desc] = line.split(/\s+/);
    if (!['core', 'afsfile', 'perf', 'todo'].includes(kind) || !Number(timeout)) {
      throw new Error(`${path}: bad stage line: ${raw}`);
    }
    stages.push({
      name, kind, requires: requires === '-' ? null : requires, timeout: Number(timeout),
      description: desc.join(' '),
      status: 'pending', // pending | running | pass | fail | skip | todo
      reason: null, begin: null, end: null, steps: [], metrics: {},
    });
  }
  return stages;
}

const MARKER = /^XENTEST (BOOT|STAGE|PASS|FAIL|SKIP|TODO|STEP|METRIC|DONE)\b ?(.*)$/;

/**
 * Parse one console line. Returns null, or { kind, stage?, rest } where rest is
 * the text after the stage name (for STAGE: "BEGIN ..." or "END").
 * Only lines that start with the marker count, so text quoted inside other
 * output (guest consoles, logs, which dom0 prints indented) never does.
 */
export function parseMarker(line) {
  const m = MARKER.exec(line.trim());
  if (!m) return null;
  const [, kind, tail] = m;
  if (kind === 'BOOT' || kind === 'DONE') return { kind, rest: tail };
  const sp = tail.indexOf(' ');
  return { kind, stage: sp < 0 ? tail : tail.slice(0, sp), rest: sp < 0 ? '' : tail.slice(sp + 1) };
}

/** "a=1.5 b=20" -> { a: 1.5, b: 20 } (non-numbers are kept as strings). */
export function parseMetrics(text) {
  const out = {};
  for (const kv of text.trim().split(/\s+/)) {
    const eq = kv.indexOf('=');
    if (eq <= 0) continue;
    const v = kv.slice(eq + 1);
    out[kv.slice(0, eq)] = v !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
  }
  return out;
}

/** Apply a parsed marker at time t (seconds) to the run state. */
export function applyMarker(state, marker, t) {
  if (marker.kind === 'BOOT') { state.bootAt ??= t; return; }
  if (marker.kind === 'DONE') { state.doneAt = t; state.doneInfo = marker.rest; return; }
  const st = state.stages.find((s) => s.name === marker.stage);
  if (!st) { state.unknown.push(`${marker.kind} ${marker.stage}`); return; }
  switch (marker.kind) {
    case 'STAGE':
      if (marker.rest.startsWith('BEGIN')) { st.begin = t; st.status = 'running'; }
      else if (marker.rest.startsWith('END')) st.end = t;
      break;
    case 'PASS':
      // A PASS counts only for a stage that was seen to begin and not fail.
      if (st.status === 'running') st.status = 'pass';
      else state.unknown.push(`PASS for ${st.name} while ${st.status}`);
      break;
    case 'FAIL': st.status = 'fail'; st.reason = marker.rest; break;
    case 'SKIP': st.status = 'skip'; st.reason = marker.rest; break;
    case 'TODO': st.status = 'todo'; st.reason = 'not written yet'; break;
    case 'STEP': st.steps.push({ t, text: marker.rest }); break;
    case 'METRIC': Object.assign(st.metrics, parseMetrics(marker.rest)); break;
  }
}

/**
 * Decide the outcome. Every non-todo stage must PASS; SKIP is tolerated with
 * allowSkip, TODO fails only with strict; stages not selected by --only are ignored, and
 * perf stages unless --only names them.
 */
export function verdict(state, { allowSkip = false, strict = false, only = null } = {}) {
  const problems = [];
  if (state.fatal) problems.push(state.fatal);
  if (state.doneAt == null) problems.push('dom0 never printed XENTEST DONE');
  for (const s of state.stages) {
    if (only && !only.includes(s.name)) continue;
    // A perf stage runs only when named (npm run test:xen:perf): not a failure otherwise.
    if (s.kind === 'perf' && !(only && only.includes(s.name))) continue;
    if (s.status === 'pass') continue;
    if (s.status === 'todo' && !strict) continue;
    if (s.status === 'skip' && allowSkip) continue;
    problems.push(`${s.name}: ${s.status}${s.reason ? ` (${s.reason})` : ''}`);
  }
  for (const u of state.unknown) problems.push(`unexpected marker: ${u}`);
  return { ok: problems.length === 0, problems };
}
