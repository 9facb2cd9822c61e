// The subcommands, each loaded only when it runs so that a short command starts fast.
import { UsageError } from './errors';
import type { ParsedArgs } from './parse';
import type { Role } from './options';

export interface CommandContext {
  /** Name the executable was invoked by (basename of argv0). */
  readonly invokedAs: string;
  readonly env: NodeJS.ProcessEnv;
  /** For commands that run on with the defaults when the config file is broken (hotplug must
   * still tell xl why; check reports every problem): the first problem. */
  readonly configError?: string;
}

export interface Command {
  readonly name: string;
  readonly role: Role | 'help';
  readonly synopsis: string;
  readonly summary: string;
  /** Reads /etc/xen/afsfile.conf (hotplug keeps its start-up to the bare minimum, but reads it too). */
  readonly readsConfig: boolean;
  /** Runs with defaults (and ctx.configError) when the config file has a problem. */
  readonly toleratesConfigError?: boolean;
  /** Not listed in `afsfile help` (tools for install.sh and packaging). */
  readonly hidden?: boolean;
  run(args: ParsedArgs, ctx: CommandContext): Promise<number>;
}

export const COMMANDS: readonly Command[] = [
  { name: 'worker', role: 'worker', readsConfig: true, synopsis: 'worker [--platform P]',
    summary: 'serve every vbd whose script is block-afsfile (the long-running backend)',
    run: async (a, c) => {
      const { choosePlatform } = await import('./platform');
      return (await import('../worker/main')).workerMain(a, c.env, choosePlatform(a), choosePlatform);
    } },
  { name: 'renew', role: 'renew', readsConfig: true, synopsis: 'renew [--keytab F] [--principal P] [--cell C] -- COMMAND...',
    summary: 'keep Kerberos tickets and AFS tokens fresh in a private PAG and run COMMAND inside it',
    run: async (a, c) => (await import('../renew/main')).renewMain(a, c.env) },
  { name: 'hotplug', role: 'hotplug', readsConfig: true, toleratesConfigError: true, synopsis: 'hotplug add|remove   (as libxl runs /etc/xen/scripts/block-afsfile)',
    summary: 'the block-afsfile hotplug script',
    run: async (a, c) => (await import('../hotplug/main')).hotplugMain(a, c.env, c.configError) },
  { name: 'demo', role: 'demo', readsConfig: false, synopsis: 'demo [--image PATH] [--size N] [--seconds N] [--queue-depth N] [--json]',
    summary: 'serve a simulated guest from an image and verify every byte it reads back',
    run: async (a) => (await import('../demo/main')).demoMain(a) },
  { name: 'create', role: 'create', readsConfig: false, synopsis: 'create PATH --size N [--preallocate]',
    summary: 'make a new image file (sparse unless --preallocate); never overwrites',
    run: async (a) => (await import('../image/create-command')).createMain(a) },
  { name: 'check', role: 'check', readsConfig: true, toleratesConfigError: true, synopsis: 'check [--json]',
    summary: 'check this dom0 can run afsfile: xenstored, /dev/xen, xen-blkback, worker, tokens',
    run: async (a, c) => (await import('../worker/check-command')).checkMain(a, c.env) },
  { name: 'status', role: 'status', readsConfig: true, synopsis: 'status [DOMID] [--json]',
    summary: 'show the worker, its devices (a table like xl block-list) and the token state',
    run: async (a, c) => (await import('../worker/status-command')).statusMain(a, c.env) },
  { name: 'detach', role: 'detach', readsConfig: true, synopsis: 'detach DOMID DEVID',
    summary: 'detach one device cleanly (as libxl does: online=0, Closing)',
    run: async (a, c) => (await import('../worker/detach-command')).detachMain(a, c.env) },
  { name: 'version', role: 'version', readsConfig: false, synopsis: 'version [--verbose]', summary: 'print the version',
    run: async (a) => (await import('./version-command')).versionMain(a) },
  { name: 'help', role: 'help', readsConfig: false, synopsis: 'help [COMMAND]', summary: 'show help',
    run: async (a) => {
      const u = await import('./usage');
      const topic = a.positional[0];
      if (topic !== undefined && !findCommand(topic) && !(u.TOPICS as readonly string[]).includes(topic)) {
        throw new UsageError(`no help for "${topic}": not a command (afsfile help lists them)`);
      }
      process.stdout.write(u.usage(topic));
      return 0;
    } },
];

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}
