// /etc/xen/afsfile.conf: `key = value` lines, `#` comments, keys are the long option names.
// Every line is kept with its number, so an error about a value names file and line.
import * as fs from 'node:fs';
import { ConfigError } from './errors';
import { findOption } from './options';
import { isIdentityKey, parseIdentityEntry } from './identity-config';

export interface ConfigEntry {
  readonly value: string;
  /** "file:line" of the (last) line that set it. */
  readonly where: string;
}

export type ConfigValues = Map<string, ConfigEntry>;

export interface ScannedConfig {
  readonly values: ConfigValues;
  /** Syntax errors, unknown keys, keys that only flags may set: each "file:line: why". */
  readonly problems: string[];
}

/** Every line's problem, not just the first (for `afsfile check`). */
export function scanConfigText(text: string, source: string): ScannedConfig {
  const values: ConfigValues = new Map();
  const problems: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const where = `${source}:${i + 1}`;
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (!line) return;
    const m = /^([a-z][a-z0-9-]*(?:\.[^\s=]*)?)\s*=\s*(.*)$/.exec(line);
    if (!m) { problems.push(`${where}: expected "key = value", got "${raw.trim()}"`); return; }
    const key = m[1]!;
    let value = m[2]!.trim();
    if (/^".*"$/.test(value) || /^'.*'$/.test(value)) value = value.slice(1, -1);
    if (isIdentityKey(key)) {
      // identity.LABEL = keytab=... domains=... (identity-config.ts), checked here for every role.
      try {
        parseIdentityEntry(key, value, where);
      } catch (e) {
        problems.push((e as Error).message);
        return;
      }
      if (values.has(key)) { problems.push(`${where}: ${key} is set twice (also ${values.get(key)!.where})`); return; }
      values.set(key, { value, where });
      return;
    }
    const spec = findOption(key);
    if (!spec) { problems.push(`${where}: unknown key "${key}" (the keys are listed in \`afsfile help config\`)`); return; }
    if (!spec.config) { problems.push(`${where}: "${key}" cannot be set in the config file (only as --${key})`); return; }
    const prev = values.get(key);
    values.set(key, { value: spec.type === 'list' && prev ? `${prev.value},${value}` : value, where });
  });
  return { values, problems };
}

/** The values, or a ConfigError naming the first bad line. */
export function parseConfigText(text: string, source: string): ConfigValues {
  const { values, problems } = scanConfigText(text, source);
  if (problems.length) throw new ConfigError(problems[0]!);
  return values;
}

/** The file's text; a missing file is undefined (an empty config) unless it was named explicitly. */
export function readConfigText(file: string, explicit: boolean): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return undefined;
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
}

/** Reads the config file; a missing file is an empty config unless it was named explicitly. */
export function readConfigFile(file: string, explicit: boolean): ConfigValues {
  const text = readConfigText(file, explicit);
  return text === undefined ? new Map() : parseConfigText(text, file);
}
