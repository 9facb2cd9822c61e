// Chooses the role from the name the executable was called by, then the subcommand.
import { prio } from '../util/journal';
import * as path from 'node:path';
import { type Command, findCommand } from './commands';
import { ConfigError, FatalError, UsageError } from './errors';
import { type ParsedArgs, parseArgs } from './parse';

export const HOTPLUG_NAME = 'block-afsfile';

export interface Dispatch {
  command: Command;
  argv: string[];
}

/** Which command runs for this argv0 and argument list. */
export function route(argv0: string, args: string[]): Dispatch {
  if (path.basename(argv0) === HOTPLUG_NAME) return { command: findCommand('hotplug')!, argv: args };
  const [first, ...rest] = args;
  if (first === undefined) throw new UsageError('no command given');
  if (first === '--version' || first === '-V') return { command: findCommand('version')!, argv: rest };
  if (first === '--help' || first === '-h') return { command: findCommand('help')!, argv: rest };
  const command = findCommand(first);
  if (!command) throw new UsageError(first.startsWith('-') ? `unknown option ${first}` : `unknown command "${first}"`);
  return { command, argv: rest };
}

/**
 * `worker --device`: a device process gets every setting from its supervisor on the command
 * line and never reads the config file, so that the file's state now (a typo being edited)
 * cannot break a device that is running (restarted after a crash, say).
 */
function isDeviceProcess(command: Command, argv: string[]): boolean {
  return command.name === 'worker' &&
    argv.some((a) => a === '--device' || a.startsWith('--device=') || a === '--spare' || a === '--opener' ||
      a.startsWith('--opener='));
}

export async function dispatch(argv0: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let chosen: Dispatch | undefined;
  try {
    chosen = route(argv0, args);
    const { command, argv } = chosen;
    if (command.role === 'help') {
      const rest = argv.filter((a) => a !== '--help' && a !== '-h');
      return await command.run(parseArgs('version', [], { env: {}, readConfig: false }).withPositional(rest), { invokedAs: path.basename(argv0), env });
    }
    const readConfig = command.readsConfig && !argv.includes('--help') && !argv.includes('-h') && !isDeviceProcess(command, argv);
    let parsed: ParsedArgs;
    let configError: string | undefined;
    try {
      parsed = parseArgs(command.role, argv, { env, readConfig });
    } catch (err) {
      if (!(err instanceof ConfigError && command.toleratesConfigError)) throw err;
      configError = err.message;
      parsed = parseArgs(command.role, argv, { env, readConfig: false });
    }
    if (parsed.bool('help')) {
      process.stdout.write((await import('./usage')).usage(command.name));
      return 0;
    }
    return await command.run(parsed, { invokedAs: path.basename(argv0), env, ...(configError ? { configError } : {}) });
  } catch (err) {
    if (err instanceof UsageError) {
      const which = chosen?.command.name ?? err.role;
      process.stderr.write(`${prio('err')}afsfile: ${err.message}\n`);
      process.stderr.write(which ? `Try 'afsfile ${which} --help'.\n` : `Try 'afsfile --help'.\n`);
      return 2;
    }
    if (err instanceof FatalError) {
      process.stderr.write(`${prio('err')}afsfile: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
}
