// Tokens: aklog once per configured cell (or once, for aklog's own cell), with the private
// cache in KRB5CCNAME; then `tokens`, where OpenAFS has it, to read their expiry back.
import { AttemptError, TOOL_TIMEOUT_MS } from './kerberos';
import { parseTokens } from './klist';
import { findOnPath } from './pag';
import { describeFailure, runTool, toolEnv } from './tools';

/**
 * `--aklog` is split on blanks (no shell, no quoting): "aklog", "/usr/bin/aklog -d", or a site
 * script. `-c CELL` is appended per cell.
 */
export function aklogCommands(aklog: string, cells: readonly string[]): string[][] {
  const base = aklog.trim().split(/\s+/).filter(Boolean);
  if (!base.length) throw new AttemptError('--aklog is empty', 'permanent');
  return cells.length ? cells.map((c) => [...base, '-c', c]) : [base];
}

export async function runAklog(aklog: string, cells: readonly string[], ccache: string, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<void> {
  for (const argv of aklogCommands(aklog, cells)) {
    const r = await runTool(argv, { env: toolEnv(env, { KRB5CCNAME: `FILE:${ccache}` }), timeoutMs: TOOL_TIMEOUT_MS, signal });
    // aklog's own codes: 3 no cell configured, 5 pioctl failed (no AFS client), 1 and others
    // Kerberos failures. None of them means tokens were set.
    if (r.code !== 0) throw new AttemptError(describeFailure(argv.join(' '), r), 'transient');
  }
}

/** Token expiry per cell (ISO string or "expired"), or undefined when it cannot be known. */
export async function tokenExpiry(env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<Record<string, string> | undefined> {
  const tokens = findOnPath('tokens', `${env.PATH ?? ''}:/usr/bin:/bin`);
  if (!tokens) return undefined;
  const r = await runTool([tokens], { env: toolEnv(env), timeoutMs: 10_000, signal });
  if (r.code !== 0) return undefined;
  const found = parseTokens(r.stdout, Date.now());
  if (!found.size) return undefined;
  const out: Record<string, string> = {};
  for (const [cell, exp] of found) out[cell] = exp === 'expired' ? 'expired' : new Date(exp).toISOString();
  return out;
}
