// The PAG (DESIGN "PAG"): renew re-execs itself once, first thing, through a single-threaded
// wrapper that makes a new PAG and then execs renew again with --in-pag, so that renew, aklog
// and the worker all share one PAG no other process can see. Node itself cannot do it: the
// credentials are per thread and installing a session keyring in a multi-threaded process is
// refused.
//
// Which wrapper ("auto"), in this order:
//   1. the OpenAFS kernel module is loaded (/proc/fs/openafs exists): pagsh. Only its setpag()
//      makes an OpenAFS PAG; a bare session keyring would not.
//   2. keyctl is on PATH: `keyctl session - ...`, a new anonymous session keyring. That is the
//      PAG of kAFS (tokens are rxrpc keys in the session keyring), and with no AFS client
//      loaded yet it still keeps Kerberos KEYRING caches and kAFS tokens private.
//   3. pagsh is on PATH: used, and renew checks inside that a PAG was really made (pagsh
//      without the kernel module only warns and runs the shell anyway).
//   4. nothing: refuse, unless --no-pag.
import * as fs from 'node:fs';
import * as path from 'node:path';

export type PagWrapper = 'pagsh' | 'keyctl';

export interface Host {
  readonly openafsModule: boolean;
  /** Absolute path of a program on PATH, or undefined. */
  which(name: string): string | undefined;
}

export function findOnPath(name: string, envPath: string | undefined): string | undefined {
  for (const dir of (envPath ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch { /* not here */ }
  }
  return undefined;
}

export function realHost(env: NodeJS.ProcessEnv): Host {
  // The system directories too: systemd units often run with a short PATH.
  const envPath = `${env.PATH ?? ''}:/usr/sbin:/usr/bin:/sbin:/bin`;
  return { openafsModule: fs.existsSync('/proc/fs/openafs'), which: (n) => findOnPath(n, envPath) };
}

export type PagChoice = { readonly wrapper: PagWrapper; readonly program: string } | { readonly error: string };

export function choosePagWrapper(mode: 'auto' | PagWrapper, host: Host): PagChoice {
  const pagsh = host.which('pagsh');
  const keyctl = host.which('keyctl');
  const missing = (what: string, pkg: string) => ({ error: `cannot make a PAG: ${what} is not installed (Debian package ${pkg}); install it or run with --no-pag` });
  if (mode === 'pagsh') return pagsh ? { wrapper: 'pagsh', program: pagsh } : missing('pagsh', 'openafs-client');
  if (mode === 'keyctl') return keyctl ? { wrapper: 'keyctl', program: keyctl } : missing('keyctl', 'keyutils');
  if (host.openafsModule) {
    return pagsh ? { wrapper: 'pagsh', program: pagsh } : missing('pagsh (the OpenAFS kernel module is loaded, so only pagsh makes a PAG)', 'openafs-client');
  }
  if (keyctl) return { wrapper: 'keyctl', program: keyctl };
  if (pagsh) return { wrapper: 'pagsh', program: pagsh };
  return { error: 'cannot make a PAG: neither keyctl (Debian keyutils) nor pagsh (openafs-client) is installed; install one or run with --no-pag' };
}

/** A word for `sh -c`: single-quoted, each ' written as '\'' (nothing inside is special). */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * How to start this program again: the single executable is process.execPath alone; from the
 * source tree (node build/src/main.js) it is node plus the script.
 */
export function selfArgv(execPath: string, script: string | undefined, isSea: boolean): string[] {
  return isSea || !script ? [execPath] : [execPath, script];
}

export function runningAsSea(): boolean {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sea = require('node:sea') as { isSea(): boolean };
    return sea.isSea();
  } catch {
    return false;
  }
}

/**
 * The wrapper's argv and environment for re-executing `inner` (renew --in-pag ...) in a new PAG.
 * pagsh runs `$SHELL -c STRING`: SHELL is set to /bin/sh for pagsh and put back (or unset) by
 * the string before the exec, so the worker sees the caller's SHELL.
 */
export function wrapperCommand(choice: { wrapper: PagWrapper; program: string }, inner: readonly string[], env: NodeJS.ProcessEnv): { argv: string[]; env: NodeJS.ProcessEnv } {
  if (choice.wrapper === 'keyctl') return { argv: [choice.program, 'session', '-', ...inner], env };
  const restore = env.SHELL === undefined ? 'unset SHELL; ' : `SHELL=${shellQuote(env.SHELL)}; `;
  const script = `${restore}exec ${inner.map(shellQuote).join(' ')}`;
  return { argv: [choice.program, '-c', script], env: { ...env, SHELL: '/bin/sh' } };
}

/**
 * Inside pagsh: did setpag() work? OpenAFS marks a PAG by a supplementary group whose high byte
 * is 'A' (0x41) and, on keyring kernels, by an `afs_pag` key named `_pag` in the session
 * keyring. Without the kernel module there is neither.
 */
export function inOpenAfsPag(procStatus: string, sessionKeyring: string | undefined): boolean {
  const groups = /^Groups:\s*(.*)$/m.exec(procStatus)?.[1]?.trim().split(/\s+/).filter(Boolean).map(Number) ?? [];
  if (groups.some((g) => g >>> 24 === 0x41)) return true;
  return sessionKeyring !== undefined && /afs_pag:\s*_pag/.test(sessionKeyring);
}
