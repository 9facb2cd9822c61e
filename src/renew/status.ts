// status/renew.json (DESIGN "Files"): what `afsfile status` and `afsfile check` show about
// tickets and tokens. Written to a temp name and renamed, so a reader never sees half a file.
// Deliberately absent: the credential cache path and anything from inside it; the principal
// name is not a secret and tells an administrator which keytab entry is in use.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { processStart, sameProcess } from '../util/proc-identity';
import { VERSION } from '../version';

export const RENEW_STATUS_NAME = 'renew.json';

export interface RenewError {
  /** ISO 8601 time of the failed attempt. */
  readonly time: string;
  readonly message: string;
  /** Needs an administrator (keytab, principal); retried only every --retry-cap. */
  readonly permanent: boolean;
}

export interface RenewStatus {
  readonly version: string;
  readonly pid: number;
  /** The process's start time (src/util/proc-identity.ts): tells it from a later one with its pid. */
  readonly pidStart?: string;
  /** ISO 8601 time this file was written. */
  readonly updated: string;
  /** false: no keytab configured, renew only runs its command (no tickets, no tokens). */
  readonly managed: boolean;
  readonly state: 'running' | 'stopped';
  /** How the PAG was made: pagsh (OpenAFS), keyctl (kAFS session keyring), none (--no-pag). */
  readonly pag: 'pagsh' | 'keyctl' | 'none';
  readonly principal: string | null;
  readonly cells: readonly string[];
  /** ISO expiry of the ticket-granting ticket; null: no valid ticket known. */
  readonly ticketExpires: string | null;
  /**
   * Per cell, from the last successful attempt: ISO expiry or "expired" (OpenAFS `tokens`), or
   * the expiry of the ticket a kAFS key was made from (its own), or "present" (kAFS, ticket expiry
   * unknown); null: no token yet.
   */
  readonly tokenExpires: Readonly<Record<string, string>> | null;
  /**
   * Successful attempts (new tokens) since renew started. The worker reopens its images when it
   * grows: kAFS writes back with the key cached at open, which a renewal does not replace.
   */
  readonly renewals: number;
  readonly lastAttempt: string | null;
  readonly lastSuccess: string | null;
  readonly lastError: RenewError | null;
  /** Consecutive failed attempts (0 after a success). */
  readonly failures: number;
  readonly nextAttempt: string | null;
  readonly childPid: number | null;
}

export type RenewStatusFields = Omit<RenewStatus, 'version' | 'pid' | 'updated'>;

/** `name`: renew.json for renew's own identity, identity-LABEL.json for an identity's opener. */
export function renewStatusPath(runDir: string, name = RENEW_STATUS_NAME): string {
  return path.join(runDir, 'status', name);
}

/** The status file of a per-domain identity's opener (DESIGN "Identities and openers"). */
export function identityStatusName(label: string): string {
  return `identity-${label}.json`;
}

export function writeRenewStatus(runDir: string, fields: RenewStatusFields, name = RENEW_STATUS_NAME): void {
  const file = renewStatusPath(runDir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  const body: RenewStatus = {
    version: VERSION, pid: process.pid, pidStart: processStart(process.pid),
    updated: new Date().toISOString(), ...fields,
  };
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o644 });
  fs.renameSync(tmp, file);
}

export type RenewStatusRead =
  | { readonly kind: 'absent' }
  | { readonly kind: 'unreadable'; readonly reason: string }
  | { readonly kind: 'ok'; readonly status: RenewStatus; readonly alive: boolean };


/**
 * For `afsfile status` / `afsfile check`: the last status renew wrote, and whether its process
 * still runs (a renew.json whose pid is gone describes tokens nobody renews any more).
 */
export function readRenewStatus(runDir: string, name = RENEW_STATUS_NAME): RenewStatusRead {
  let text: string;
  try {
    text = fs.readFileSync(renewStatusPath(runDir, name), 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return err.code === 'ENOENT' ? { kind: 'absent' } : { kind: 'unreadable', reason: err.message };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return { kind: 'unreadable', reason: `not JSON: ${(e as Error).message}` };
  }
  const s = parsed as Partial<RenewStatus> | null;
  if (!s || typeof s !== 'object' || typeof s.pid !== 'number' || typeof s.managed !== 'boolean' || typeof s.updated !== 'string') {
    return { kind: 'unreadable', reason: 'missing pid, managed or updated' };
  }
  return { kind: 'ok', status: s as RenewStatus, alive: sameProcess(s.pid, s.pidStart) };
}

/** One line for humans, e.g. for `afsfile check`. */
export function describeRenewStatus(r: RenewStatusRead, nowMs = Date.now()): string {
  if (r.kind === 'absent') return 'renew: not running (no status/renew.json)';
  if (r.kind === 'unreadable') return `renew: status unreadable (${r.reason})`;
  const s = r.status;
  if (!r.alive) return `renew: not running (pid ${s.pid} gone; last update ${s.updated})`;
  if (!s.managed) return 'renew: no keytab configured; tickets and tokens are not managed';
  const exp = s.ticketExpires ? Date.parse(s.ticketExpires) : NaN;
  const ticket = Number.isFinite(exp) && exp > nowMs ? `ticket valid until ${s.ticketExpires}` : 'no valid ticket';
  const err = s.lastError && s.failures > 0 ? `; failing (${s.failures}x): ${s.lastError.message}` : '';
  return `renew: ${s.principal ?? 'principal unknown'}, ${ticket}${err}; next attempt ${s.nextAttempt ?? 'none'}`;
}
