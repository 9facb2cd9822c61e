// The per-domain identities in `afsfile check` (README "Per-domain identities"): for each
// `identity.LABEL` line, what an administrator must get right before a guest attaches. The
// keytab must be a regular file only root can read (whoever reads it is that tenant to the
// cell), in a directory others cannot write; it must hold a key for the identity's principal;
// no two identities, and no identity and the host's (renew's), may share a principal (the
// cell's ACLs could not tell their guests apart). With the worker running, each identity's
// process must have renewed (status/identity-LABEL.json), as `tokens` checks renew's.
// Domains bound twice are config errors (checkConfig reports them with file and line).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type ConfigValues, readConfigFile } from '../cli/config-file';
import { type IdentitySpec, isIdentityKey, parseIdentityEntry } from '../cli/identity-config';
import { parseKeytabPrincipals } from '../renew/klist';
import { identityStatusName, readRenewStatus } from '../renew/status';
import type { Finding } from './check-command';

export interface IdentityCheckInputs {
  readonly configFile: string;
  readonly configExplicit: boolean;
  readonly runDir: string;
  readonly env: NodeJS.ProcessEnv;
  /** Whether the worker runs (its identities' status files are then current). */
  readonly workerRunning: boolean;
  readonly now?: number;
}

/** What `klist -k` says a keytab holds: its principals, or why they cannot be listed. */
type KeytabRead = { principals: string[] } | { error: string };

function listKeytab(keytab: string, env: NodeJS.ProcessEnv): KeytabRead {
  try {
    const out = execFileSync('klist', ['-k', keytab], {
      env: {
        PATH: env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
        ...(env.KRB5_CONFIG ? { KRB5_CONFIG: env.KRB5_CONFIG } : {}),
      },
      encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'],
    });
    return { principals: parseKeytabPrincipals(out) };
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') return { error: 'klist is not on PATH (apt-get install krb5-user)' };
    const why = (err.stderr ?? '').trim().split('\n').at(-1) || err.message;
    return { error: `klist -k cannot read it: ${why}` };
  }
}

/** A principal as written in the config (the realm may be left out, as kinit takes it) in a list. */
function holds(list: readonly string[], principal: string): boolean {
  return principal.includes('@') ? list.includes(principal) : list.some((p) => p.split('@')[0] === principal);
}

/** Where a keytab is not a root-only regular file in a directory only root may change. */
function keytabFileProblems(keytab: string): { problems: string[]; fixes: string[]; exists: boolean } {
  const problems: string[] = [];
  const fixes: string[] = [];
  let st: fs.Stats;
  try {
    st = fs.statSync(keytab);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    problems.push(code === 'ENOENT' ? `keytab ${keytab} does not exist` : `keytab ${keytab}: ${(e as Error).message}`);
    fixes.push(`make it on the KDC: kadmin -q "ktadd -k ${keytab} PRINCIPAL", then copy it here with mode 0600`);
    return { problems, fixes, exists: false };
  }
  if (!st.isFile()) {
    problems.push(`keytab ${keytab} is not a regular file`);
    fixes.push('point keytab= at the keytab file');
    return { problems, fixes, exists: false };
  }
  const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
  if (st.uid !== 0) {
    problems.push(`keytab ${keytab} is owned by uid ${st.uid}, not root: that user can act as this identity`);
    fixes.push(`chown root:root ${keytab}`);
  }
  if (st.mode & 0o077) {
    problems.push(`keytab ${keytab} has mode ${mode}: group or others may use it, i.e. act as this identity ` +
      'in the cell');
    fixes.push(`chmod 600 ${keytab}`);
  }
  const dir = path.dirname(keytab);
  try {
    const d = fs.statSync(dir);
    if ((d.mode & 0o022) && !(d.mode & 0o1000)) {
      problems.push(`its directory ${dir} may be written by group or others, who could replace the keytab`);
      fixes.push(`chmod go-w ${dir}`);
    }
    if (d.uid !== 0) {
      problems.push(`its directory ${dir} is owned by uid ${d.uid}, not root`);
      fixes.push(`chown root ${dir}`);
    }
  } catch { /* the file was there: its directory is */ }
  return { problems, fixes, exists: true };
}

/** The identity's renewal as its process reports it (like `tokens` for renew's). */
function renewalState(runDir: string, label: string, now: number): { problem?: string; detail?: string } {
  const r = readRenewStatus(runDir, identityStatusName(label));
  if (r.kind === 'absent') {
    return { problem: `its process has written no status (${identityStatusName(label)}): not started` };
  }
  if (r.kind === 'unreadable') return { problem: `its status is unreadable: ${r.reason}` };
  if (!r.alive) return { problem: `its process (pid ${r.status.pid}) is not running` };
  const s = r.status;
  const exp = s.ticketExpires ? Date.parse(s.ticketExpires) : NaN;
  if (!(exp > now)) return { problem: `no valid ticket${s.lastError ? `: ${s.lastError.message}` : ''}` };
  const tokens = s.tokenExpires ?? {};
  const bad = Object.entries(tokens).filter(([, v]) => v === 'expired' || (v !== 'present' && !(Date.parse(v) > now)));
  const why = s.lastError ? `: ${s.lastError.message}` : '';
  if (bad.length) return { problem: `AFS token expired for ${bad.map(([c]) => c).join(', ')}${why}` };
  const cells = Object.keys(tokens);
  return { detail: `ticket valid until ${s.ticketExpires}${cells.length ? `, tokens for ${cells.join(', ')}` : ''}` };
}

/** The identity lines of a config file that parse (a broken file or line is a config finding). */
function readSpecs(file: string, explicit: boolean): { specs: IdentitySpec[]; values: ConfigValues } | undefined {
  let values;
  try {
    values = readConfigFile(file, explicit);
  } catch {
    return undefined;
  }
  const specs: IdentitySpec[] = [];
  for (const [key, entry] of values) {
    if (!isIdentityKey(key)) continue;
    try { specs.push(parseIdentityEntry(key, entry.value, entry.where)); } catch { /* a config finding */ }
  }
  return { specs, values };
}

/** The keytab of the first identity line: kinit and aklog are needed for it as for renew's. */
export function firstIdentityKeytab(file: string, explicit: boolean): string | undefined {
  return readSpecs(file, explicit)?.specs[0]?.keytab;
}

export function checkIdentities(o: IdentityCheckInputs): Finding[] {
  const read = readSpecs(o.configFile, o.configExplicit);
  if (!read) return []; // the config finding says what is wrong with the file
  const { specs, values } = read;
  const required = values.get('identity-default')?.value.trim() === 'required';
  if (!specs.length) {
    return required
      ? [{
        check: 'identities', ok: false,
        detail: 'identity-default is required but no identity.LABEL line is configured: every disk is refused',
        fix: 'add identity.LABEL = keytab=FILE domains=NAME,... lines, or identity-default = host',
      }]
      : [];
  }
  const now = o.now ?? Date.now();
  // The host identity's principal: renew's principal, else its keytab's first.
  const hostKeytab = values.get('keytab')?.value.trim();
  const hostPrincipal = values.get('principal')?.value.trim() ||
    (hostKeytab ? (r => ('principals' in r ? r.principals[0] : undefined))(listKeytab(hostKeytab, o.env)) : undefined);
  const principalOf = new Map<string, string>();
  const findings: Finding[] = [];
  for (const spec of specs) {
    const check = `identity ${spec.label}`;
    const file = keytabFileProblems(spec.keytab);
    const problems = [...file.problems];
    const fixes = [...file.fixes];
    let principal = spec.principal;
    if (file.exists) {
      const k = listKeytab(spec.keytab, o.env);
      if ('error' in k) {
        problems.push(`keytab ${spec.keytab}: ${k.error}`);
      } else if (!k.principals.length) {
        problems.push(`keytab ${spec.keytab} holds no keys`);
        fixes.push(`kadmin -q "ktadd -k ${spec.keytab} ${spec.principal ?? 'PRINCIPAL'}"`);
      } else if (spec.principal && !holds(k.principals, spec.principal)) {
        problems.push(`keytab ${spec.keytab} has no key for principal ${spec.principal} ` +
          `(it holds ${k.principals.join(', ')})`);
        fixes.push(`kadmin -q "ktadd -k ${spec.keytab} ${spec.principal}", or principal= one it holds`);
      } else {
        principal ??= k.principals[0];
      }
    }
    if (principal) {
      const bare = (p: string): string => p.split('@')[0]!;
      if (hostPrincipal && bare(principal) === bare(hostPrincipal)) {
        problems.push(`its principal ${principal} is the host identity's (renew's keytab): its domains would get ` +
          'the host\'s rights');
        fixes.push('give the identity a principal of its own');
      }
      const other = [...principalOf].find(([, p]) => bare(p) === bare(principal!));
      if (other) {
        problems.push(`its principal ${principal} is identity ${other[0]}'s too: the cell's ACLs cannot tell ` +
          'their domains apart');
        fixes.push('give each identity a principal of its own');
      }
      principalOf.set(spec.label, principal);
    }
    let running = '';
    if (o.workerRunning) {
      const r = renewalState(o.runDir, spec.label, now);
      if (r.problem) {
        problems.push(r.problem);
        fixes.push('journalctl -u afsfile shows its renewals (kinit, aklog); fix the keytab or principal, ' +
          'then systemctl reload afsfile');
      } else running = `; ${r.detail}`;
    }
    const what = `${principal ? `principal ${principal}` : 'principal unknown'}, keytab ${spec.keytab}, ` +
      `domains ${spec.domains.join(', ')}`;
    findings.push(problems.length
      ? { check, ok: false, detail: `${what}: ${problems.join('; ')}`, fix: [...new Set(fixes)].join('; ') }
      : { check, ok: true, detail: `${what} (keytab root-only, key present)${running}` });
  }
  return findings;
}
