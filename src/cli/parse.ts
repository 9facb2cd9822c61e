// Command-line parsing for one role: minimist over the role's slice of the option table,
// then the environment and the config file fill what the flags left open.
import minimist from 'minimist';
import { readConfigFile } from './config-file';
import { ConfigError, UsageError } from './errors';
import { type OptionSpec, type Role, optionsFor } from './options';
import { type OptionValue, ValueError, convertValue } from './values';

export type { OptionValue } from './values';

export class ParsedArgs {
  constructor(
    readonly role: Role,
    private readonly values: Map<string, OptionValue>,
    /** Positional arguments before `--`. */
    readonly positional: string[],
    /** Everything after `--` (renew's command). */
    readonly command: string[],
    /** Names of options given on the command line (not from file, env or default). */
    readonly explicit: ReadonlySet<string>,
    /** What was parsed, so that a reload (SIGHUP) reads the config file again. */
    private readonly origin?: { argv: string[]; ctx: ParseContext },
  ) {}

  withPositional(positional: string[]): ParsedArgs {
    return new ParsedArgs(this.role, this.values, positional, this.command, this.explicit, this.origin);
  }

  /** The same command line parsed again: the config file as it is now (throws as parseArgs). */
  reread(): ParsedArgs {
    if (!this.origin) throw new Error('these options were not parsed from a command line');
    return parseArgs(this.role, this.origin.argv, this.origin.ctx).withPositional(this.positional);
  }
  has(name: string): boolean {
    return this.values.has(name);
  }
  string(name: string): string {
    const v = this.values.get(name);
    if (typeof v !== 'string') throw new UsageError(`--${name} is required`, this.role);
    return v;
  }
  optionalString(name: string): string | undefined {
    const v = this.values.get(name);
    return typeof v === 'string' ? v : undefined;
  }
  number(name: string): number {
    const v = this.values.get(name);
    if (typeof v !== 'number') throw new UsageError(`--${name} is required`, this.role);
    return v;
  }
  optionalNumber(name: string): number | undefined {
    const v = this.values.get(name);
    return typeof v === 'number' ? v : undefined;
  }
  bool(name: string): boolean {
    return this.values.get(name) === true;
  }
  list(name: string): string[] {
    const v = this.values.get(name);
    return Array.isArray(v) ? v : [];
  }
}

/** convertValue, with the error a command line (usage, exit 2) or a configuration (exit 78) gets. */
function convert(spec: OptionSpec, raw: unknown, from: string, role: Role): OptionValue {
  try {
    return convertValue(spec, raw, from);
  } catch (err) {
    if (!(err instanceof ValueError)) throw err;
    throw from === 'command line' ? new UsageError(err.message, role) : new ConfigError(err.message);
  }
}

export interface ParseContext {
  env: NodeJS.ProcessEnv;
  /** Read the config file (off for roles that must start without touching the disk). */
  readConfig: boolean;
}

export function parseArgs(role: Role, argv: string[], ctx: ParseContext): ParsedArgs {
  const specs = optionsFor(role);
  const dashdash = argv.indexOf('--');
  const own = dashdash >= 0 ? argv.slice(0, dashdash) : argv;
  const command = dashdash >= 0 ? argv.slice(dashdash + 1) : [];

  // minimist reads `--no-X` as X=false, so a boolean named no-X is parsed as the negation of X.
  const booleans = specs.filter((s) => s.type === 'boolean').map((s) => (s.name.startsWith('no-') ? s.name.slice(3) : s.name));
  const strings = specs.filter((s) => s.type !== 'boolean').map((s) => s.name);
  const unknown: string[] = [];
  const parsed = minimist(own, {
    boolean: [...booleans, 'help'],
    string: strings,
    alias: { h: 'help' },
    unknown: (arg) => {
      if (arg.startsWith('-')) unknown.push(arg);
      return !arg.startsWith('-');
    },
  });
  if (unknown.length) throw new UsageError(`unknown option ${unknown[0]}`, role);

  const values = new Map<string, OptionValue>();
  const explicit = new Set<string>();
  for (const spec of specs) {
    const negated = spec.type === 'boolean' && spec.name.startsWith('no-');
    const raw = negated ? parsed[spec.name.slice(3)] === false : (parsed[spec.name] as unknown);
    const given = spec.type === 'boolean' ? own.some((a) => a === `--${spec.name}` || a.startsWith(`--${spec.name}=`) || a === `--no-${spec.name}` || (negated && a === `--${spec.name.slice(3)}`)) : raw !== undefined;
    if (!given) continue;
    // minimist turns a repeated string option into an array; only lists may repeat.
    if (Array.isArray(raw) && spec.type !== 'list') throw new UsageError(`--${spec.name} given more than once`, role);
    values.set(spec.name, convert(spec, raw, 'command line', role));
    explicit.add(spec.name);
  }
  if (parsed.help) values.set('help', true);

  for (const spec of specs) {
    if (values.has(spec.name) || !spec.env) continue;
    const v = ctx.env[spec.env];
    if (v !== undefined && v !== '') values.set(spec.name, convert(spec, v, spec.env, role));
  }

  if (ctx.readConfig && specs.some((s) => s.name === 'config')) {
    const file = (values.get('config') as string | undefined) ?? '/etc/xen/afsfile.conf';
    const fromFile = readConfigFile(file, values.has('config'));
    for (const [key, entry] of fromFile) {
      const spec = specs.find((s) => s.name === key);
      if (!spec || values.has(key)) continue; // keys of other roles are fine in a shared file
      values.set(key, convert(spec, entry.value, entry.where, role));
    }
  }

  for (const spec of specs) {
    if (!values.has(spec.name) && spec.default !== undefined) values.set(spec.name, convert(spec, spec.default, 'default', role));
  }

  const positional = parsed._.map(String);
  return new ParsedArgs(role, values, positional, command, explicit, { argv: [...argv], ctx });
}
