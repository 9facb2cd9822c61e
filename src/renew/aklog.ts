// Tokens: aklog once per configured cell (or once, for aklog's own cell), with the private
// cache in KRB5CCNAME, called the way that aklog takes its arguments; then a check that a token
// really is there, because an aklog's exit status does not say so (aklog-kafs of kafs-client 0.5
// prints "invalid option -- 'c'" and exits 0 without a token).
//
// The two clients (DESIGN "PAG"):
//   openafs  `aklog -c CELL` (openafs-krb5); the token is checked with `tokens`, which also
//            gives its expiry.
//   kafs     `aklog-kafs CELL` (kafs-client: the cell is positional, an optional realm after
//            it); the token is an rxrpc key "afs@CELL" in the session keyring, checked with
//            `keyctl show @s`. The rxrpc key type has no update, so every aklog-kafs makes a
//            new key (a new id): a key id seen before the attempt proves nothing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AttemptError, TOOL_TIMEOUT_MS } from './kerberos';
import { parseTokens } from './klist';
import { findOnPath } from './pag';
import { describeFailure, runTool, toolEnv } from './tools';

export type AfsClient = 'openafs' | 'kafs';

/** What decides `--afs-client auto`: which kernel client is loaded. */
export interface ClientHost {
  /** /proc/fs/openafs: the OpenAFS kernel module. */
  readonly openafs: boolean;
  /** /proc/net/afs: kafs.ko (fs/afs/proc.c makes it per network namespace). */
  readonly kafs: boolean;
}

export function realClientHost(): ClientHost {
  return { openafs: fs.existsSync('/proc/fs/openafs'), kafs: fs.existsSync('/proc/net/afs') };
}

/** The aklog program a client uses when `--aklog` is `auto`. */
export const DEFAULT_AKLOG: Record<AfsClient, string> = { openafs: 'aklog', kafs: 'aklog-kafs' };

/**
 * `--afs-client auto`: the loaded kernel module; with none loaded (yet), the aklog's name
 * (aklog-kafs, kafs-aklog, a site script named so) says kafs, anything else openafs.
 */
export function chooseClient(setting: string, aklog: string, host: ClientHost): AfsClient {
  if (setting === 'openafs' || setting === 'kafs') return setting;
  if (host.openafs) return 'openafs';
  if (host.kafs) return 'kafs';
  const program = aklog.trim().split(/\s+/)[0] ?? '';
  return aklog !== 'auto' && /kafs/i.test(path.basename(program)) ? 'kafs' : 'openafs';
}

/**
 * `--aklog` is split on blanks (no shell, no quoting): "aklog", "/usr/bin/aklog -d", or a site
 * script; "auto" is the client's own. Per cell: `-c CELL` for OpenAFS aklog, the cell as its
 * first argument for aklog-kafs.
 */
export function aklogCommands(aklog: string, cells: readonly string[], client: AfsClient = 'openafs'): string[][] {
  const base = (aklog.trim() === 'auto' ? DEFAULT_AKLOG[client] : aklog).trim().split(/\s+/).filter(Boolean);
  if (!base.length) throw new AttemptError('--aklog is empty', 'permanent');
  if (!cells.length) return [base];
  return cells.map((c) => (client === 'kafs' ? [...base, c] : [...base, '-c', c]));
}

/** rxrpc keys of a `keyctl show` listing: key id → cell (lower case), for "afs@CELL" keys. */
export function parseRxrpcKeys(keyctlShow: string): Map<number, string> {
  const keys = new Map<number, string>();
  // " 123456789 --als-rv      0     0   \_ rxrpc: afs@example.org"
  for (const m of keyctlShow.matchAll(/^\s*(\d+)\s+\S+\s+-?\d+\s+-?\d+\s+[\\_| ]*rxrpc: afs@(\S+)\s*$/gm)) {
    keys.set(Number(m[1]), m[2]!.toLowerCase());
  }
  return keys;
}

/** What tokens an attempt found: per cell, an ISO expiry or "expired" (OpenAFS), or "present" (kAFS). */
export type TokenReport = Record<string, string>;

/** kAFS tokens ("present") get the expiry of the ticket they were made from: the rxrpc key's own. */
export function withTicketExpiry(tokens: TokenReport, ticketExpiresMs: number | undefined): TokenReport {
  if (ticketExpiresMs === undefined) return tokens;
  const out: TokenReport = {};
  for (const [cell, exp] of Object.entries(tokens)) {
    out[cell] = exp === 'present' ? new Date(ticketExpiresMs).toISOString() : exp;
  }
  return out;
}

/**
 * Which of the wanted cells (all, or any one when none is configured) have no new token.
 * `before` is the rxrpc keys seen before aklog ran: a key that was there already is not new.
 */
export function missingKafsTokens(cells: readonly string[], before: ReadonlyMap<number, string>, after: ReadonlyMap<number, string>): string[] {
  const fresh = new Set<string>();
  for (const [id, cell] of after) if (!before.has(id)) fresh.add(cell);
  if (!cells.length) return fresh.size ? [] : ['(aklog\'s default cell)'];
  return cells.filter((c) => !fresh.has(c.toLowerCase()));
}

export function missingOpenAfsTokens(cells: readonly string[], found: ReadonlyMap<string, number | 'expired'>, nowMs: number): string[] {
  const valid = new Set<string>();
  for (const [cell, exp] of found) if (exp !== 'expired' && exp > nowMs) valid.add(cell.toLowerCase());
  if (!cells.length) return valid.size ? [] : ['(aklog\'s default cell)'];
  return cells.filter((c) => !valid.has(c.toLowerCase()));
}

async function keyctlShow(env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<Map<number, string>> {
  const r = await runTool(['keyctl', 'show', '@s'], { env: toolEnv(env), timeoutMs: 10_000, signal });
  if (r.failure?.endsWith('command not found')) throw new AttemptError('keyctl is not installed (Debian keyutils): kAFS tokens cannot be checked', 'permanent');
  if (r.code !== 0) throw new AttemptError(describeFailure('keyctl show @s', r), 'transient');
  return parseRxrpcKeys(r.stdout);
}

async function openAfsTokens(env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<{ found: Map<string, number | 'expired'>; said: string }> {
  const tokens = findOnPath('tokens', `${env.PATH ?? ''}:/usr/bin:/bin`);
  if (!tokens) throw new AttemptError('tokens is not installed (Debian openafs-client): OpenAFS tokens cannot be checked', 'permanent');
  const r = await runTool([tokens], { env: toolEnv(env), timeoutMs: 10_000, signal });
  if (r.code !== 0) throw new AttemptError(describeFailure('tokens', r), 'transient');
  return { found: parseTokens(r.stdout, Date.now()), said: r.stdout };
}

/**
 * Runs aklog for every cell and checks that each got a token. Returns what was found (for the
 * status). A missing token is a transient failure: aklog's own words are in the message.
 */
export async function runAklog(aklog: string, cells: readonly string[], client: AfsClient, ccache: string, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<TokenReport> {
  const before = client === 'kafs' ? await keyctlShow(env, signal) : new Map<number, string>();
  const said: string[] = [];
  for (const argv of aklogCommands(aklog, cells, client)) {
    const r = await runTool(argv, { env: toolEnv(env, { KRB5CCNAME: `FILE:${ccache}` }), timeoutMs: TOOL_TIMEOUT_MS, signal });
    // aklog's own codes: 3 no cell configured, 5 pioctl failed (no AFS client), 1 and others
    // Kerberos failures. None of them means tokens were set.
    if (r.code !== 0) throw new AttemptError(describeFailure(argv.join(' '), r), 'transient');
    const words = (r.stderr.trim() || r.stdout.trim()).split('\n').filter(Boolean).pop();
    if (words) said.push(`${argv.join(' ')}: ${words}`);
  }
  const tail = said.length ? `; aklog said: ${said.join(' | ')}` : '';
  if (client === 'kafs') {
    const after = await keyctlShow(env, signal);
    const missing = missingKafsTokens(cells, before, after);
    if (missing.length) throw new AttemptError(`aklog exited 0 but the session keyring holds no new rxrpc token for ${missing.join(', ')}${tail}`, 'transient');
    const out: TokenReport = {};
    for (const [id, cell] of after) if (!before.has(id)) out[cell] = 'present';
    return out;
  }
  const { found } = await openAfsTokens(env, signal);
  const missing = missingOpenAfsTokens(cells, found, Date.now());
  if (missing.length) throw new AttemptError(`aklog exited 0 but \`tokens\` shows no valid token for ${missing.join(', ')}${tail}`, 'transient');
  const out: TokenReport = {};
  for (const [cell, exp] of found) out[cell] = exp === 'expired' ? 'expired' : new Date(exp).toISOString();
  return out;
}
