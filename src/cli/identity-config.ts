// Per-domain Kerberos identities in /etc/xen/afsfile.conf (DESIGN "Identities and openers"):
//
//   identity.web = keytab=/etc/xen/afsfile/web.keytab domains=web1,web2
//   identity.db  = keytab=/etc/xen/afsfile/db.keytab principal=afsfile/db@EXAMPLE.ORG domains=db1 cell=example.org
//   identity-default = host        # domains bound to no identity: host (renew's), or required (refused)
//   identity.batch = keytab=/etc/xen/afsfile/batch.keytab domains=b1 lifetime=1d margin=30m
//
// lifetime=, margin= and retry-cap= override renew's keys of those names for one identity (same
// syntax and bounds, the one validation of values.ts); without them the identity uses renew's.
//
// The label (after `identity.`) is what keys guests can read name (hotplug-error); the principal
// never appears there. A domain is bound by its name, read when its disk is attached: xl names
// a migration's destination `NAME--incoming` and its source `NAME--migratedaway`
// (tools/xl/xl_migrate.c), which bind as NAME.
import { ConfigError } from './errors';
import type { ConfigValues } from './config-file';
import { findOption } from './options';
import { ValueError, convertValue } from './values';

export const IDENTITY_PREFIX = 'identity.';
/** The label of renew's own identity (the worker's PAG): not usable for a configured one. */
export const HOST_IDENTITY = 'host';

export interface IdentitySpec {
  readonly label: string;
  readonly keytab: string;
  /** Default: the first principal of the keytab (as kinit -k, k5start -U). */
  readonly principal: string | undefined;
  readonly domains: readonly string[];
  /** Default: the `cell` setting (renew's). */
  readonly cells: readonly string[] | undefined;
  /** Seconds; default: renew's `lifetime`, `margin`, `retry-cap`. */
  readonly lifetimeS?: number | undefined;
  readonly marginS?: number | undefined;
  readonly retryCapS?: number | undefined;
  /** file:line, for messages. */
  readonly where: string;
}

const LABEL = /^[a-z0-9][a-z0-9_-]{0,31}$/;
/** xl accepts most names; these characters keep the config syntax unambiguous. */
const DOMAIN = /^[A-Za-z0-9_.:@+-]{1,64}$/;
/** renew's duration keys an identity line may override. */
const RENEW_KEYS = ['lifetime', 'margin', 'retry-cap'] as const;
const FIELDS = new Set<string>(['keytab', 'principal', 'domains', 'cell', ...RENEW_KEYS]);
const USAGE = 'keytab=FILE domains=NAME,... [principal=NAME] [cell=CELL,...] [lifetime=D] [margin=D] [retry-cap=D]';

export function isIdentityKey(key: string): boolean {
  return key.startsWith(IDENTITY_PREFIX);
}

/** One `identity.LABEL = ...` line; throws ConfigError naming file:line. */
export function parseIdentityEntry(key: string, value: string, where: string): IdentitySpec {
  const label = key.slice(IDENTITY_PREFIX.length);
  const bad = (why: string): ConfigError => new ConfigError(`${where}: ${key}: ${why}`);
  if (!LABEL.test(label)) throw bad('the label must be 1-32 of a-z, 0-9, _ and -, starting with a letter or digit');
  if (label === HOST_IDENTITY) throw bad(`"${HOST_IDENTITY}" is renew's own identity; choose another label`);
  const fields = new Map<string, string>();
  for (const word of value.split(/\s+/).filter(Boolean)) {
    const eq = word.indexOf('=');
    const name = eq > 0 ? word.slice(0, eq) : '';
    if (!FIELDS.has(name)) {
      throw bad(`expected ${USAGE}, got "${word}"`);
    }
    if (fields.has(name)) throw bad(`${name}= given twice`);
    fields.set(name, word.slice(eq + 1));
  }
  const keytab = fields.get('keytab');
  if (!keytab || !keytab.startsWith('/')) throw bad('keytab= must be an absolute path');
  const domains = (fields.get('domains') ?? '').split(',').filter(Boolean);
  if (!domains.length) throw bad('domains= must name at least one domain');
  for (const d of domains) if (!DOMAIN.test(d)) throw bad(`"${d}" is not a domain name this file can bind`);
  const cellText = fields.get('cell');
  const cells = cellText === undefined ? undefined : cellText.split(',').filter(Boolean);
  const principal = fields.get('principal') || undefined;
  const [lifetimeS, marginS, retryCapS] = RENEW_KEYS.map((name) => renewKey(fields, name, key, where));
  return { label, keytab, principal, domains, cells, lifetimeS, marginS, retryCapS, where };
}

/** An identity's own value of one of renew's duration keys, checked as renew checks its own. */
function renewKey(fields: ReadonlyMap<string, string>, name: string, key: string, where: string): number | undefined {
  const raw = fields.get(name);
  if (raw === undefined) return undefined;
  const spec = findOption(name);
  if (!spec) throw new Error(`no option ${name}`);
  try {
    return convertValue(spec, raw, where, `${key}: ${name}=`) as number;
  } catch (e) {
    if (e instanceof ValueError) throw new ConfigError(e.message);
    throw e;
  }
}

/** Every identity of a scanned config; a domain bound twice is an error. */
export function identitiesFrom(values: ConfigValues): IdentitySpec[] {
  const out: IdentitySpec[] = [];
  const boundBy = new Map<string, IdentitySpec>();
  for (const [key, entry] of values) {
    if (!isIdentityKey(key)) continue;
    const spec = parseIdentityEntry(key, entry.value, entry.where);
    for (const d of spec.domains) {
      const other = boundBy.get(d);
      if (other) {
        throw new ConfigError(`${spec.where}: domain ${d} is already bound to identity ${other.label} ` +
          `(${other.where})`);
      }
      boundBy.set(d, spec);
    }
    out.push(spec);
  }
  return out;
}

/** The name a domain binds by: without xl's migration suffixes. */
export function bindingName(domainName: string): string {
  return domainName.replace(/--(incoming|migratedaway)$/, '');
}

/** The identity bound to a domain name, if any. */
export function identityFor(specs: readonly IdentitySpec[], domainName: string): IdentitySpec | undefined {
  const n = bindingName(domainName);
  return specs.find((s) => s.domains.includes(n));
}

/**
 * How an error of a domain's identity starts in keys guests can read (afsfile-error, then
 * hotplug-error): the label, never the principal. The hotplug script finds the label there and
 * logs the principal in the hotplug log only (identityOfError).
 */
export function identityErrorPrefix(domain: string, label: string): string {
  return `domain ${domain}, identity ${label}`;
}

/** The label in a message that starts with identityErrorPrefix (after an optional "afsfile: "). */
export function identityOfError(message: string): string | undefined {
  const m = /^(?:afsfile: )?domain \S+, identity ([a-z0-9][a-z0-9_-]{0,31}): /.exec(message);
  return m?.[1] === HOST_IDENTITY ? undefined : m?.[1];
}
