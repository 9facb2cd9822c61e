// Running the external tools (kinit, klist, aklog, tokens): argv only (no shell), bounded in
// time, cancellable when renew is shutting down, output captured for the error messages.
import { spawn } from 'node:child_process';

export interface ToolResult {
  /** Exit status, or undefined when the tool could not be started or was killed. */
  readonly code: number | undefined;
  readonly signal: NodeJS.Signals | undefined;
  readonly stdout: string;
  readonly stderr: string;
  /** Why it did not run to completion: spawn error, timeout, cancelled. */
  readonly failure: string | undefined;
}

export interface ToolOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/** The environment every tool gets: the caller's, with messages and dates in a fixed form. */
export function toolEnv(base: NodeJS.ProcessEnv, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, LC_ALL: 'C', LANG: 'C', TZ: 'UTC', ...extra };
  delete env.LANGUAGE;
  return env;
}

export function runTool(argv: readonly string[], opts: ToolOptions): Promise<ToolResult> {
  return new Promise((resolve) => {
    const [file, ...args] = argv;
    if (!file) { resolve({ code: undefined, signal: undefined, stdout: '', stderr: '', failure: 'empty command' }); return; }
    let stdout = '';
    let stderr = '';
    let failure: string | undefined;
    const child = spawn(file, args, { env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.setEncoding('utf8').on('data', (d: string) => { if (stdout.length < 65536) stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { if (stderr.length < 65536) stderr += d; });
    const kill = (why: string) => {
      failure ??= why;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => kill(`timed out after ${Math.round(opts.timeoutMs / 1000)} s`), opts.timeoutMs);
    const onAbort = () => kill('cancelled');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    child.on('error', (err: NodeJS.ErrnoException) => {
      failure ??= err.code === 'ENOENT' ? `${file}: command not found` : `${file}: ${err.message}`;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve({ code: code ?? undefined, signal: signal ?? undefined, stdout, stderr, failure });
    });
  });
}

/** One line for a log or status: the tool's own last words, else how it ended. */
export function describeFailure(name: string, r: ToolResult): string {
  const said = r.stderr.trim().split('\n').filter(Boolean).pop() ?? r.stdout.trim().split('\n').filter(Boolean).pop();
  const how = r.failure ?? (r.signal ? `killed by ${r.signal}` : `exit status ${r.code}`);
  return said ? `${name} failed (${how}): ${said}` : `${name} failed (${how})`;
}
