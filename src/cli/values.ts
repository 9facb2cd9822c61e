// The one validation of option values: every flag, environment variable and config file line
// goes through convertValue (parse.ts), and so does `afsfile check` (validate-config.ts), so
// a value the worker would refuse at start or on SIGHUP is one check reports.
import { type OptionSpec, MAX_DURATION_S } from './options';
import { parseDuration, parseSize } from '../util/units';

export type OptionValue = string | number | boolean | string[];

/** A value that is not valid for its option; `where` is "file:line", "command line" or a
 * variable name. */
export class ValueError extends Error {
  constructor(readonly where: string, readonly option: string, readonly why: string) {
    super(`${where}: ${option} ${why}`);
    this.name = 'ValueError';
  }
}

/** "5 s", "2 min", "7 d": how a bound reads in a message. */
export function formatDuration(s: number): string {
  if (s >= 86_400 && s % 86_400 === 0) return `${s / 86_400} d`;
  if (s >= 3600 && s % 3600 === 0) return `${s / 3600} h`;
  if (s >= 60 && s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}

/** 65536 → "64K", 4294967296 → "4G" (the size syntax itself). */
export function formatSize(n: number): string {
  for (const [unit, f] of [['T', 1024 ** 4], ['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as const) if (n >= f && n % f === 0) return `${n / f}${unit}`;
  return String(n);
}

/** What the option accepts, for messages, --help and the config template. */
export function describeRange(spec: OptionSpec): string {
  const fmt = spec.type === 'duration' ? formatDuration : spec.type === 'size' ? formatSize : String;
  if (spec.min !== undefined && spec.max !== undefined) return `${fmt(spec.min)} to ${fmt(spec.max)}`;
  if (spec.min !== undefined) return `at least ${fmt(spec.min)}`;
  if (spec.max !== undefined) return `at most ${fmt(spec.max)}`;
  return '';
}

function inRange(spec: OptionSpec, n: number): boolean {
  return (spec.min === undefined || n >= spec.min) && (spec.max === undefined || n <= spec.max);
}

export function convertValue(spec: OptionSpec, raw: unknown, where: string, label = where.includes(':') ? spec.name : `--${spec.name}`): OptionValue {
  const bad = (why: string): ValueError => new ValueError(where, label, why);
  const range = describeRange(spec);
  switch (spec.type) {
    case 'boolean': {
      if (typeof raw === 'boolean') return raw;
      const s = String(raw).toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(s)) return true;
      if (['0', 'false', 'no', 'off'].includes(s)) return false;
      throw bad(`expects yes or no, got "${String(raw)}"`);
    }
    case 'number': {
      const text = String(raw).trim();
      const n = typeof raw === 'number' ? raw : Number(text);
      const what = spec.integer ? 'a whole number' : 'a number';
      if (text === '' || !Number.isFinite(n) || (spec.integer && !Number.isInteger(n)) || !inRange(spec, n) || (spec.min === undefined && n < 0))
        throw bad(`expects ${what}${range ? ` from ${range}` : ''}; got "${String(raw)}"`);
      return n;
    }
    case 'size': {
      const n = parseSize(String(raw));
      if (!Number.isFinite(n) || n < 0 || !inRange(spec, n))
        throw bad(`expects a size such as 512, 64K, 16M, 10G (K, M, G, T are powers of 1024)${range ? `, from ${range}` : ''}; got "${String(raw)}"`);
      return n;
    }
    case 'duration': {
      const n = typeof raw === 'number' ? raw : parseDuration(String(raw));
      const max = Math.min(spec.max ?? MAX_DURATION_S, MAX_DURATION_S);
      if (!Number.isFinite(n) || n < 0 || n > max || !inRange(spec, n))
        throw bad(`expects a duration such as 30, 30s, 500ms, 5m, 10h, 1d (a plain number is seconds)${range ? `, from ${range}` : ''}; got "${String(raw)}"`);
      return n;
    }
    case 'list': {
      const list = (Array.isArray(raw) ? raw : [raw]).flatMap((x) => String(x).split(',')).map((x) => x.trim())
        .filter(Boolean);
      const relative = spec.absolute ? list.filter((x) => !x.startsWith('/')) : [];
      if (relative.length) throw bad(`expects absolute paths; got "${relative.join(', ')}"`);
      return list;
    }
    case 'string': {
      if (typeof raw === 'boolean' || raw === '') throw bad('needs a value');
      const s = String(raw);
      if (spec.choices && !spec.choices.includes(s)) throw bad(`must be one of ${spec.choices.join(', ')}; got "${s}"`);
      return s;
    }
  }
}

