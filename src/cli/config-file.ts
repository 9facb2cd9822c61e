// /etc/xen/afsfile.conf: `key = value` lines, `#` comments, keys are long option names.
import * as fs from 'node:fs';
import { FatalError } from './errors';
import { findOption } from './options';

export type ConfigValues = Map<string, string>;

export function parseConfigText(text: string, source: string): ConfigValues {
  const values: ConfigValues = new Map();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (!line) return;
    const m = /^([a-z][a-z0-9-]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new FatalError(`${source}:${i + 1}: expected "key = value", got "${raw.trim()}"`);
    const key = m[1]!;
    let value = m[2]!.trim();
    if (/^".*"$/.test(value) || /^'.*'$/.test(value)) value = value.slice(1, -1);
    const spec = findOption(key);
    if (!spec) throw new FatalError(`${source}:${i + 1}: unknown key "${key}"`);
    if (!spec.config) throw new FatalError(`${source}:${i + 1}: "${key}" cannot be set in the config file`);
    const prev = values.get(key);
    values.set(key, spec.type === 'list' && prev ? `${prev},${value}` : value);
  });
  return values;
}

/** Reads the config file; a missing file is an empty config unless it was named explicitly. */
export function readConfigFile(file: string, explicit: boolean): ConfigValues {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return new Map();
    throw new FatalError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  return parseConfigText(text, file);
}
