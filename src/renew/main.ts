// `afsfile renew [--] COMMAND...`: what kstart's `k5start -U -f KEYTAB -K n -a -t -- COMMAND`
// does, at second granularity (DESIGN "Process model", "PAG", "Signals", "Files").
//
//   no keytab          run COMMAND and exit with its status; nothing else.
//   keytab, no PAG     re-exec through pagsh or `keyctl session` with --in-pag (pag.ts), wait for
//                      it and pass on TERM/INT/HUP/ALRM.
//   --in-pag/--no-pag  start COMMAND at once (AFSFILE_RENEW_PID, KRB5CCNAME set for it only),
//                      then the token loop (loop.ts); SIGALRM = refresh now; exit with
//                      COMMAND's status.
//
// Under systemd the outer renew is the main pid. KillMode=mixed suits it: SIGTERM goes to renew
// alone and reaches the worker once, through renew; with control-group the worker gets it twice.
// A signal sent in the first few hundred ms, before the re-executed renew has installed its
// handlers, takes its default action there (TERM: renew ends with 143 before its child starts).
import { FatalError, UsageError } from '../cli/errors';
import { findOption } from '../cli/options';
import type { ParsedArgs } from '../cli/parse';
import { formatDuration } from '../cli/values';
import { startChild } from './child';
import { defaultCcache, prepareCcacheDir } from './ccache';
import { Renewer } from './loop';
import {
  type PagWrapper, choosePagWrapper, inOpenAfsPag, realHost, runningAsSea, selfArgv, wrapperCommand,
} from './pag';
import { processStart } from '../util/proc-identity';
import { writeRenewStatus } from './status';
import { readFileSync } from 'node:fs';
import { runTool } from './tools';
import { type Priority, prio } from '../util/journal';

const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/** A duration option in seconds (bounded and checked where it was read: src/cli/values.ts). */
function duration(args: ParsedArgs, name: string): number {
  return args.number(name);
}

/** The options given on the command line, again, for the re-executed renew. */
export function explicitArgs(args: ParsedArgs): string[] {
  const out: string[] = [];
  for (const name of args.explicit) {
    if (name === 'in-pag' || name === 'pag-wrapper' || name === 'help') continue;
    const spec = findOption(name);
    if (!spec) continue;
    if (spec.type === 'boolean') { if (args.bool(name)) out.push(`--${name}`); continue; }
    if (spec.type === 'list') { for (const v of args.list(name)) out.push(`--${name}=${v}`); continue; }
    const v = spec.type === 'string' ? args.optionalString(name) : args.optionalNumber(name);
    if (v !== undefined) out.push(`--${name}=${v}`);
  }
  return out;
}

function withoutCcache(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const e = { ...env };
  delete e.KRB5CCNAME;
  return e;
}

function bestEffortStatus(runDir: string, state: 'running' | 'stopped', childPid: number | null): void {
  try {
    writeRenewStatus(runDir, { managed: false, state, pag: 'none', principal: null, cells: [], ticketExpires: null, tokenExpires: null, renewals: 0, lastAttempt: null, lastSuccess: null, lastError: null, failures: 0, nextAttempt: null, childPid });
  } catch { /* a run dir we cannot write must not stop the worker */ }
}

/** No keytab: the command runs as if renew were not there (ALRM has nothing to refresh). */
async function runDirect(command: string[], env: NodeJS.ProcessEnv, runDir: string): Promise<number> {
  process.on('SIGALRM', () => {});
  const child = startChild({ argv: command, env, forward: FORWARDED, onStart: (pid) => bestEffortStatus(runDir, 'running', pid) });
  const code = await child.exited;
  bestEffortStatus(runDir, 'stopped', null);
  return code;
}

async function reexecInPag(args: ParsedArgs, command: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const mode = args.string('pag-wrapper') as 'auto' | PagWrapper;
  const choice = choosePagWrapper(mode, realHost(env));
  if ('error' in choice) throw new FatalError(choice.error);
  const inner = [...selfArgv(process.execPath, process.argv[1], runningAsSea()), 'renew', '--in-pag', `--pag-wrapper=${choice.wrapper}`, ...explicitArgs(args), '--', ...command];
  const w = wrapperCommand(choice, inner, withoutCcache(env));
  // The wrapper execs renew, so its pid becomes the inner renew's: signals reach it directly.
  return await startChild({ argv: w.argv, env: w.env, forward: [...FORWARDED, 'SIGALRM'] }).exited;
}

export async function checkOpenAfsPag(env: NodeJS.ProcessEnv): Promise<void> {
  const status = readFileSync('/proc/self/status', 'utf8');
  const keys = await runTool(['keyctl', 'show', '@s'], { env, timeoutMs: 5000 });
  if (!inOpenAfsPag(status, keys.code === 0 ? keys.stdout : undefined)) {
    throw new FatalError('pagsh ran but made no PAG (is the OpenAFS kernel module loaded?); use --pag-wrapper=keyctl for kAFS, or --no-pag to run without one');
  }
}

/** SIGHUP with a keytab: the settings from the config file as it is now, then a refresh. */
function reload(args: ParsedArgs, renewer: Renewer): void {
  const say = (l: string, level: Priority = 'info'): boolean => process.stderr.write(`${prio(level)}afsfile renew: SIGHUP: ${l}\n`);
  try {
    const now = args.reread();
    const keytab = now.optionalString('keytab');
    if (!keytab) throw new UsageError('the new settings name no keytab; stopping token management takes a restart', 'renew');
    renewer.reconfigure({
      keytab, principal: now.optionalString('principal'), cells: now.list('cell'), lifetimeS: duration(now, 'lifetime'),
      timing: { marginMs: duration(now, 'margin') * 1000, retryCapMs: duration(now, 'retry-cap') * 1000 },
      aklog: now.string('aklog'), afsClient: now.string('afs-client'),
    });
    say(`reloaded the settings (keytab ${keytab}, cells ${now.list('cell').join(' ') || '(aklog\'s default)'}, lifetime ${formatDuration(now.number('lifetime'))}); refreshing now`);
  } catch (e) {
    say(`the settings were not reloaded, the old ones stay: ${(e as Error).message}`, 'warning');
  }
}

export async function renewMain(args: ParsedArgs, callerEnv: NodeJS.ProcessEnv): Promise<number> {
  // From here on these signals never kill renew itself: while a child runs they are passed on
  // (child.ts), and after it exited renew still removes its cache and writes its last status.
  for (const sig of FORWARDED) process.on(sig, () => {});
  const command = args.command.length ? args.command : args.positional;
  if (!command.length) throw new UsageError('renew needs a command to run, e.g. afsfile renew -- afsfile worker', 'renew');
  const runDir = args.string('run-dir');
  const keytab = args.optionalString('keytab');
  if (!keytab) return runDirect(command, callerEnv, runDir);

  const lifetimeS = duration(args, 'lifetime');
  const marginS = duration(args, 'margin');
  const capS = duration(args, 'retry-cap');
  const noPag = args.bool('no-pag');
  if (!noPag && !args.bool('in-pag')) return reexecInPag(args, command, callerEnv);

  const pag = noPag ? 'none' : (args.string('pag-wrapper') === 'pagsh' ? 'pagsh' : 'keyctl');
  if (pag === 'pagsh') await checkOpenAfsPag(callerEnv);
  const ccacheOpt = args.optionalString('ccache');
  const ccache = ccacheOpt ?? defaultCcache(runDir);
  prepareCcacheDir(ccache, ccacheOpt === undefined);

  const env = withoutCcache(callerEnv);
  const renewer = new Renewer({
    keytab, principal: args.optionalString('principal'), cells: args.list('cell'), lifetimeS,
    timing: { marginMs: marginS * 1000, retryCapMs: capS * 1000 },
    aklog: args.string('aklog'), afsClient: args.string('afs-client'), ccache, runDir, pag, env,
  });
  // Installed before the child runs, so a kick from a fast worker is never the default action.
  process.on('SIGALRM', () => renewer.kick());
  // SIGHUP also reaches the child (FORWARDED): each reads its own settings again.
  process.on('SIGHUP', () => reload(args, renewer));
  const child = startChild({
    argv: command,
    // AFSFILE_RENEW_START: the worker checks it still signals this process (pid reuse).
    env: {
      ...env, KRB5CCNAME: `FILE:${ccache}`,
      AFSFILE_RENEW_PID: String(process.pid), AFSFILE_RENEW_START: processStart(process.pid) ?? '',
    },
    forward: FORWARDED,
    onStart: (pid) => renewer.setChild(pid),
  });
  renewer.start();
  const code = await child.exited;
  await renewer.stop();
  return code;
}
