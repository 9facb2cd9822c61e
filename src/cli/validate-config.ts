// `afsfile check`'s view of the config file, as `sshd -t` gives one: every line of every role
// checked with the same conversion the roles use when they read it (values.ts), and every
// problem listed, not only the first.
import { readConfigText, scanConfigText } from './config-file';
import { ConfigError } from './errors';
import { findOption } from './options';
import { identitiesFrom, isIdentityKey } from './identity-config';
import { type OptionValue, ValueError, convertValue } from './values';

export interface ConfigReport {
  readonly file: string;
  /** The file does not exist (and was not named): every setting is its default. */
  readonly absent: boolean;
  readonly keys: number;
  readonly problems: string[];
  /** The valid settings, converted (the rest take their defaults). */
  readonly values: ReadonlyMap<string, OptionValue>;
}

export function validateConfigFile(file: string, explicit: boolean): ConfigReport {
  let text: string | undefined;
  try {
    text = readConfigText(file, explicit);
  } catch (err) {
    if (err instanceof ConfigError) return { file, absent: false, keys: 0, problems: [err.message], values: new Map() };
    throw err;
  }
  if (text === undefined) return { file, absent: true, keys: 0, problems: [], values: new Map() };
  const { values, problems } = scanConfigText(text, file);
  const converted = new Map<string, OptionValue>();
  try {
    identitiesFrom(values);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(err.message);
  }
  for (const [key, entry] of values) {
    if (isIdentityKey(key)) continue; // checked by the scan and identitiesFrom
    const spec = findOption(key)!;
    try {
      converted.set(key, convertValue(spec, entry.value, entry.where));
    } catch (err) {
      if (!(err instanceof ValueError)) throw err;
      problems.push(err.message);
    }
  }
  return { file, absent: false, keys: values.size, problems, values: converted };
}
