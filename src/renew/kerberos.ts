// Tickets with the MIT tools: the keytab's first principal (klist -k), a fresh TGT (kinit -k),
// and its expiry read back (klist -c). kinit writes a temp cache that is renamed over the real
// one only on success, so a failed attempt never spoils a still-valid ticket and the worker
// never reads a half-written cache.
import * as fs from 'node:fs';
import { type FailureKind, classifyKinitError, parseKeytabFirstPrincipal, parseKlistCache } from './klist';
import { describeFailure, runTool, toolEnv } from './tools';

export const TOOL_TIMEOUT_MS = 30_000;

export class AttemptError extends Error {
  constructor(message: string, readonly kind: FailureKind) {
    super(message);
    this.name = 'AttemptError';
  }
}

export interface KerberosOptions {
  readonly keytab: string;
  readonly principal: string | undefined;
  readonly lifetimeS: number;
  /** Path of the FILE cache (no "FILE:" prefix). */
  readonly ccache: string;
  readonly env: NodeJS.ProcessEnv;
  readonly signal?: AbortSignal;
}

export interface Ticket {
  readonly principal: string;
  readonly expiresMs: number | undefined;
}

/** A missing or unreadable keytab needs an administrator; say so before bothering the KDC. */
export function checkKeytab(keytab: string): void {
  try {
    fs.accessSync(keytab, fs.constants.R_OK);
    if (!fs.statSync(keytab).isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'does not exist' : err.code === 'EACCES' ? 'is not readable by renew' : err.message;
    throw new AttemptError(`keytab ${keytab} ${why}; fix --keytab or the file`, 'permanent');
  }
}

export async function keytabPrincipal(keytab: string, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<string> {
  const r = await runTool(['klist', '-k', keytab], { env: toolEnv(env), timeoutMs: TOOL_TIMEOUT_MS, signal });
  const p = r.code === 0 ? parseKeytabFirstPrincipal(r.stdout) : undefined;
  if (p) return p;
  if (r.code === 0) throw new AttemptError(`keytab ${keytab} holds no keys; add one with kadmin ktadd or set --principal`, 'permanent');
  throw new AttemptError(describeFailure(`klist -k ${keytab}`, r), r.failure ? 'transient' : 'permanent');
}

export async function getTicket(o: KerberosOptions): Promise<Ticket> {
  checkKeytab(o.keytab);
  const principal = o.principal ?? (await keytabPrincipal(o.keytab, o.env, o.signal));
  const tmp = `${o.ccache}.new`;
  fs.rmSync(tmp, { force: true });
  const env = toolEnv(o.env);
  delete env.KRB5CCNAME;
  const args = ['kinit', '-k', '-t', o.keytab, '-l', `${Math.max(1, Math.round(o.lifetimeS))}s`, '-c', `FILE:${tmp}`, principal];
  const r = await runTool(args, { env, timeoutMs: TOOL_TIMEOUT_MS, signal: o.signal });
  if (r.code !== 0) {
    fs.rmSync(tmp, { force: true });
    throw new AttemptError(describeFailure('kinit', r), r.failure ? 'transient' : classifyKinitError(r.stderr));
  }
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, o.ccache);
  return { principal, expiresMs: await ticketExpiry(o.ccache, o.env, o.signal) };
}

/** The TGT's expiry from `klist -c`, undefined if klist fails or prints something unexpected. */
export async function ticketExpiry(ccache: string, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<number | undefined> {
  const r = await runTool(['klist', '-c', `FILE:${ccache}`], { env: toolEnv(env), timeoutMs: TOOL_TIMEOUT_MS, signal });
  return r.code === 0 ? parseKlistCache(r.stdout).expiresMs : undefined;
}
