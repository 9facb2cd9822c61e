// The stage list (test/xen/stages.txt), the selection of what each boot runs,
// and the XENTEST markers dom0 prints.
import { readFileSync } from 'node:fs';

/** The Xen versions the harness can boot (host/platform.sh). */
export const XEN_VERSIONS = ['4.17', '4.20'];

/**
 * Parse stages.txt: `group NAME BUDGET DESCRIPTION` lines and
 * NAME GROUP XEN KIND REQUIRES TIMEOUT DESCRIPTION stage lines.
 * `select NAME XEN ITEM,ITEM...` lines name a selection (run.mjs --select NAME):
 * on Xen XEN, these groups and stages.
 * Returns { groups: [{ name, budget, description }], stages: [...], selections: { NAME: { XEN: [items] } } }.
 */
export function readStageFile(path) {
  const groups = [];
  const stages = [];
  const selections = {};
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const words = line.split(/\s+/);
    if (words[0] === 'group') {
      const [, name, budget, ...desc] = words;
      if (!name || !(Number(budget) > 0)) throw new Error(`${path}: bad group line: ${raw}`);
      groups.push({ name, budget: Number(budget), description: desc.join(' ') });
      continue;
    }
    if (words[0] === 'select') {
      const [, name, xen, items] = words;
      if (!name || !XEN_VERSIONS.includes(xen) || !items) throw new Error(`${path}: bad select line: ${raw}`);
      ((selections[name] ??= {})[xen] ??= []).push(...items.split(',').filter(Boolean));
      continue;
    }
    const [name, group, xen, kind, requires, timeout, ...desc] = words;
    const xens = xen === 'all' ? [...XEN_VERSIONS] : (xen ?? '').split(',');
    if (!['core', 'afsfile', 'perf', 'todo'].includes(kind) || !(Number(timeout) > 0)
      || !groups.some((g) => g.name === group) || !xens.every((v) => XEN_VERSIONS.includes(v))
      || stages.some((s) => s.name === name)) {
      throw new Error(`${path}: bad stage line (unknown group or Xen version, bad kind or timeout, `
        + `or a second ${name}): ${raw}`);
    }
    stages.push({
      name, group, xens, kind, requires: requires === '-' ? null : requires, timeout: Number(timeout),
      description: desc.join(' '),
    });
  }
  for (const s of stages) {
    for (const r of s.requires?.split('|') ?? []) {
      if (!stages.some((x) => x.name === r)) throw new Error(`${path}: ${s.name} requires unknown stage ${r}`);
    }
    for (const v of s.requires ? s.xens : []) {
      if (!requiredOn(stages, s, v)) {
        throw new Error(`${path}: ${s.name} runs on Xen ${v}, where none of ${s.requires} runs`);
      }
    }
  }
  for (const [name, byXen] of Object.entries(selections)) {
    for (const items of Object.values(byXen)) {
      for (const it of items) {
        if (!groups.some((g) => g.name === it) && !stages.some((st) => st.name === it)) {
          throw new Error(`${path}: selection ${name} names unknown ${it}`);
        }
      }
    }
  }
  return { groups, stages, selections };
}

/**
 * The stage `stage` requires on Xen `xen`: REQUIRES is a stage, or alternatives
 * `A|B` of which the first that runs on that version counts (e.g. the AFS
 * stages: afsfile-setup on the vbd route of 4.17, vbd3-setup on 4.20). Null if
 * it requires nothing, undefined if no alternative runs there.
 */
export function requiredOn(stages, stage, xen) {
  if (!stage.requires) return null;
  return stage.requires.split('|').find((r) => stages.find((x) => x.name === r)?.xens.includes(xen));
}

/** Fresh run-state objects of the stages one boot of Xen `xen` runs (names in order). */
export function bootStages(file, xen, names) {
  return file.stages.filter((s) => names.includes(s.name)).map((s) => ({
    ...s, xen,
    status: 'pending', // pending | running | pass | fail | skip | todo
    reason: null, begin: null, end: null, steps: [], metrics: {},
  }));
}

/** The stages of stages.txt as fresh run state (all of them; for tests and tools). */
export function readStages(path) {
  const file = readStageFile(path);
  return bootStages(file, XEN_VERSIONS[0], file.stages.map((s) => s.name));
}

/**
 * Decide what each boot runs. groups / xen: lists of names, or ['all'];
 * only: stage names (then groups do not matter); select: the name of a
 * selection of stages.txt (then groups and only do not matter, and xen only
 * narrows it). Every stage is either run on
 * a Xen version (plan.boots[xen]: names in stages.txt order, with the stages
 * they require added, on the same boot) or listed in plan.notRun with why, so
 * nothing is dropped silently. Throws on an unknown group, version or stage.
 */
export function plan(file, { groups = ['core'], xen = ['4.17'], only = null, select = null } = {}) {
  const allGroups = file.groups.map((g) => g.name);
  if (select != null) {
    const sel = file.selections[select];
    const known = Object.keys(file.selections).join(', ') || 'none';
    if (!sel) throw new Error(`unknown selection ${select} (known: ${known})`);
    const vs = XEN_VERSIONS.filter((v) => sel[v] && (xen.includes('all') || xen.includes(v)));
    const parts = vs.map((v) => plan(file, {
      xen: [v],
      only: file.stages
        .filter((s) => s.xens.includes(v) && (sel[v].includes(s.name) || sel[v].includes(s.group)))
        .map((s) => s.name),
    }));
    return {
      boots: Object.assign({}, ...parts.map((p) => p.boots)),
      notRun: [],
      budget: Object.assign({}, ...parts.map((p) => p.budget)),
      groups: [...new Set(parts.flatMap((p) => Object.values(p.boots).flat()
        .map((n) => file.stages.find((s) => s.name === n).group)))],
      xen: vs, emptyGroups: [],
    };
  }
  const gs = groups.includes('all') ? allGroups : groups;
  const xs = xen.includes('all') ? [...XEN_VERSIONS] : xen;
  for (const g of gs) {
    if (!allGroups.includes(g)) throw new Error(`unknown group ${g} (known: ${allGroups.join(', ')})`);
  }
  for (const v of xs) {
    if (!XEN_VERSIONS.includes(v)) throw new Error(`unknown Xen version ${v} (known: ${XEN_VERSIONS.join(', ')})`);
  }
  for (const n of only ?? []) if (!file.stages.some((s) => s.name === n)) throw new Error(`unknown stage ${n}`);
  const wanted = (s) => (only ? only.includes(s.name) : gs.includes(s.group));
  const boots = {};
  const notRun = [];
  for (const v of xs) {
    const names = new Set(file.stages.filter((s) => wanted(s) && s.xens.includes(v)).map((s) => s.name));
    for (const n of [...names]) { // add what the chosen stages require, transitively
      const byName = (name) => file.stages.find((x) => x.name === name);
      const need = (s) => requiredOn(file.stages, s, v);
      for (let s = byName(n), r = need(s); r; s = byName(r), r = need(s)) names.add(r);
    }
    const list = file.stages.filter((s) => names.has(s.name)).map((s) => s.name);
    if (list.length) boots[v] = list;
  }
  for (const s of file.stages) {
    if (!wanted(s)) continue;
    for (const v of s.xens) {
      if (xs.includes(v)) continue;
      notRun.push({ name: s.name, group: s.group, xen: v, reason: `Xen ${v} not selected (--xen ${xs.join(',')})` });
    }
  }
  const budget = {};
  for (const [v, names] of Object.entries(boots)) {
    const used = new Set(names.map((n) => file.stages.find((s) => s.name === n).group));
    budget[v] = file.groups.filter((g) => used.has(g.name)).reduce((a, g) => a + g.budget, 0);
  }
  const emptyGroups = gs.filter((g) => !file.stages.some((s) => s.group === g));
  return { boots, notRun, budget, groups: gs, xen: xs, emptyGroups };
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
 * Decide the outcome of one boot. Every stage it ran must PASS; SKIP is
 * tolerated with allowSkip, TODO fails only with strict. `prefix` (e.g. "Xen
 * 4.20: ") goes before each problem.
 */
export function verdict(state, { allowSkip = false, strict = false, prefix = '' } = {}) {
  const problems = [];
  if (state.fatal) problems.push(`${prefix}${state.fatal}`);
  if (state.doneAt == null) problems.push(`${prefix}dom0 never printed XENTEST DONE`);
  for (const s of state.stages) {
    if (s.status === 'pass') continue;
    if (s.status === 'todo' && !strict) continue;
    if (s.status === 'skip' && allowSkip) continue;
    problems.push(`${prefix}${s.name}: ${s.status}${s.reason ? ` (${s.reason})` : ''}`);
  }
  for (const u of state.unknown) problems.push(`${prefix}unexpected marker: ${u}`);
  return { ok: problems.length === 0, problems };
}
