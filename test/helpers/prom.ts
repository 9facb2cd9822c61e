// A strict reader of the Prometheus text exposition format 0.0.4 (prometheus/docs,
// exposition_formats.md), as node_exporter's textfile collector parses it: HELP/TYPE before a
// family's samples, a family's samples together, label values escaped, no series twice.
export interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

export interface Parsed {
  readonly types: ReadonlyMap<string, string>;
  readonly samples: readonly Sample[];
  /** The value of the one sample with this name whose labels include `want`. */
  get(name: string, want?: Record<string, string>): number | undefined;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;

function value(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  if (!/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(text)) throw new Error(`bad value ${text}`);
  return Number(text);
}

function family(name: string, types: ReadonlyMap<string, string>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    const base = name.slice(0, -suffix.length);
    if (name.endsWith(suffix) && types.get(base) === 'histogram') return base;
  }
  return name;
}

export function parseProm(text: string): Parsed {
  if (!text.endsWith('\n')) throw new Error('the last line has no newline');
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const done = new Set<string>();
  const series = new Set<string>();
  let current = '';
  for (const [i, line] of text.slice(0, -1).split('\n').entries()) {
    const where = `line ${i + 1} (${line})`;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      if (!NAME.test(meta[2]!)) throw new Error(`${where}: bad metric name`);
      if (meta[1] === 'TYPE') {
        const known = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];
        if (!known.includes(meta[3]!)) throw new Error(`${where}: bad type`);
        if (types.has(meta[2]!)) throw new Error(`${where}: TYPE twice`);
        types.set(meta[2]!, meta[3]!);
      }
      continue;
    }
    if (line.startsWith('#') || line === '') throw new Error(`${where}: not a sample`);
    const m = /^([^{\s]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || !NAME.test(m[1]!)) throw new Error(`${where}: not a sample`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      LABEL.lastIndex = 0;
      while (LABEL.lastIndex < m[2].length) {
        const at = LABEL.lastIndex;
        const l = LABEL.exec(m[2]);
        if (!l || l.index !== at) throw new Error(`${where}: bad labels`);
        if (l[1]! in labels) throw new Error(`${where}: label ${l[1]} twice`);
        labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      }
    }
    const fam = family(m[1]!, types);
    if (!types.has(fam)) throw new Error(`${where}: no TYPE for ${fam} before it`);
    if (fam !== current) {
      if (done.has(fam)) throw new Error(`${where}: samples of ${fam} not together`);
      if (current) done.add(current);
      current = fam;
    }
    const key = `${m[1]}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new Error(`${where}: series twice`);
    series.add(key);
    samples.push({ name: m[1]!, labels, value: value(m[3]!) });
  }
  return {
    types, samples,
    get(name, want = {}) {
      const hits = samples.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
      if (hits.length > 1) throw new Error(`${name} ${JSON.stringify(want)}: ${hits.length} samples`);
      return hits[0]?.value;
    },
  };
}
