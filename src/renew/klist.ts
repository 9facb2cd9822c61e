// Parsers for what the MIT and OpenAFS tools print. They are run with LC_ALL=C and TZ=UTC (see
// tools.ts), so dates come out as "mm/dd/yy HH:MM:SS" in UTC; the other formats MIT's
// krb5_timestamp_to_sfstring can fall back to are accepted too, and anything else is "unknown"
// rather than a guess.

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

function utc(y: number, mon: number, d: number, h: number, mi: number, s: number): number | undefined {
  const ms = Date.UTC(y, mon, d, h, mi, s);
  const back = new Date(ms);
  // Reject 02/31 and friends instead of letting Date roll them over.
  if (back.getUTCMonth() !== mon || back.getUTCDate() !== d || h > 23 || mi > 59 || s > 60) return undefined;
  return ms;
}

/** One klist timestamp (UTC) → epoch ms, or undefined when it is not a format we know. */
export function parseKlistTime(text: string): number | undefined {
  const t = text.trim();
  let m = /^(\d\d)\/(\d\d)\/(\d\d|\d{4}) (\d\d):(\d\d)(?::(\d\d))?$/.exec(t);
  if (m) {
    const y = m[3]!.length === 2 ? 2000 + Number(m[3]) : Number(m[3]);
    return utc(y, Number(m[1]) - 1, Number(m[2]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0));
  }
  m = /^(\d\d?) ([A-Za-z]{3}) (\d{4}) (\d\d):(\d\d):(\d\d)$/.exec(t);
  if (m) {
    const mon = MONTHS.indexOf(m[2]!.toLowerCase());
    return mon < 0 ? undefined : utc(Number(m[3]), mon, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  }
  m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)$/.exec(t);
  if (m) return utc(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  return undefined;
}

export interface CacheInfo {
  readonly principal: string | undefined;
  /** Expiry of the TGT (krbtgt/REALM@REALM of the default principal's realm), else of the
   *  earliest-expiring ticket; undefined when no ticket line could be read. */
  readonly expiresMs: number | undefined;
  readonly renewUntilMs: number | undefined;
}

/** `klist -c CACHE` output → the default principal and the TGT's expiry. */
export function parseKlistCache(out: string): CacheInfo {
  const principal = /^Default principal:\s*(\S+)\s*$/m.exec(out)?.[1];
  const realm = principal?.includes('@') ? principal.slice(principal.lastIndexOf('@') + 1) : undefined;
  const lines = out.split('\n');
  let tgt: { exp: number; renew: number | undefined } | undefined;
  let earliest: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    // A ticket line: two timestamps and a service principal, separated by two or more blanks.
    const fields = lines[i]!.trim().split(/\s{2,}/);
    if (fields.length !== 3) continue;
    const start = parseKlistTime(fields[0]!);
    const exp = parseKlistTime(fields[1]!);
    if (start === undefined || exp === undefined) continue;
    earliest = earliest === undefined ? exp : Math.min(earliest, exp);
    const renewLine = /^\s*renew until (.+)$/.exec(lines[i + 1] ?? '');
    const renew = renewLine ? parseKlistTime(renewLine[1]!) : undefined;
    if (realm !== undefined && fields[2] === `krbtgt/${realm}@${realm}`) tgt = { exp, renew };
  }
  return { principal, expiresMs: tgt?.exp ?? earliest, renewUntilMs: tgt?.renew };
}

/** `klist -k KEYTAB` output → the principal of the first entry (k5start -U's rule). */
export function parseKeytabFirstPrincipal(out: string): string | undefined {
  return parseKeytabPrincipals(out)[0];
}

/** `klist -k KEYTAB` output → every principal it holds keys for, in keytab order, once each. */
export function parseKeytabPrincipals(out: string): string[] {
  const lines = out.split('\n');
  const rule = lines.findIndex((l) => /^-+\s+-+\s*$/.test(l));
  const found: string[] = [];
  for (const line of lines.slice(rule + 1)) {
    const m = /^\s*\d+\s+(?:\S+ \S+\s+)?(\S+@\S+)/.exec(line);
    if (m && !found.includes(m[1]!)) found.push(m[1]!);
  }
  return found;
}

/**
 * OpenAFS `tokens` output → expiry per cell. Lines look like
 * "User's (AFS ID 1000) rxkad tokens for example.org [Expires Nov 26 03:30]"; the year is not
 * printed, so it is the one that puts the date nearest to `nowMs`.
 */
export function parseTokens(out: string, nowMs: number): Map<string, number | 'expired'> {
  const found = new Map<string, number | 'expired'>();
  for (const m of out.matchAll(/tokens for (?:afs@)?(\S+) \[(?:Expires ([A-Za-z]{3}) +(\d\d?) (\d\d):(\d\d)|(>> ?Expired ?<<))\]/g)) {
    const cell = m[1]!;
    if (m[6]) { found.set(cell, 'expired'); continue; }
    const mon = MONTHS.indexOf(m[2]!.toLowerCase());
    if (mon < 0) continue;
    const year = new Date(nowMs).getUTCFullYear();
    const candidates = [year - 1, year, year + 1]
      .map((y) => utc(y, mon, Number(m[3]), Number(m[4]), Number(m[5]), 0))
      .filter((x): x is number => x !== undefined);
    if (!candidates.length) continue;
    found.set(cell, candidates.reduce((a, b) => (Math.abs(a - nowMs) <= Math.abs(b - nowMs) ? a : b)));
  }
  return found;
}

export type FailureKind = 'permanent' | 'transient';

/**
 * Tells failures that need an administrator (bad keytab, unknown principal, stale key) from
 * those that fix themselves (KDC unreachable, clock not yet synchronised at boot). Matches the
 * C-locale messages of MIT kinit 1.20; anything unrecognised counts as transient, so it is
 * retried with the normal backoff rather than slowly.
 */
export function classifyKinitError(stderr: string): FailureKind {
  const permanent = [
    /Keytab contains no suitable keys/i,
    /not found in Kerberos database/i,
    /Key table file '.*' not found/i,
    /Key table entry not found/i,
    /Permission denied/i,
    /Preauthentication failed/i,
    /Password incorrect/i,
    /Bad encryption type/i,
    /credentials have been revoked/i,
    /entry in database has expired/i,
    /Unsupported key table format/i,
    /Bad format in keytab/i,
  ];
  return permanent.some((re) => re.test(stderr)) ? 'permanent' : 'transient';
}
