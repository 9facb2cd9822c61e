// --help text, made from the command list and the option table.
import { COMMANDS, findCommand } from './commands';
import { configTemplate } from './config-template';
import { type OptionSpec, type Role, optionsFor } from './options';

function optionLine(o: OptionSpec): string {
  const flag = o.type === 'boolean' ? `--${o.name}` : `--${o.name} ${o.placeholder ?? 'VALUE'}`;
  const extras: string[] = [];
  if (o.default !== undefined && o.default !== false) extras.push(`default ${String(o.default)}`);
  if (o.env) extras.push(`env ${o.env}`);
  const tail = extras.length ? ` (${extras.join('; ')})` : '';
  return `  ${flag.padEnd(34)} ${o.help}${tail}\n`;
}

export function usage(commandName?: string): string {
  if (commandName === 'config') return configTemplate();
  const cmd = commandName ? findCommand(commandName) : undefined;
  if (cmd) {
    let text = `usage: afsfile ${cmd.synopsis}\n\n${cmd.summary}\n`;
    if (cmd.role !== 'help') {
      const opts = optionsFor(cmd.role as Role);
      if (opts.length) text += `\noptions:\n${opts.map(optionLine).join('')}`;
    }
    if (cmd.name === 'hotplug') text += '\nlibxl runs it as /etc/xen/scripts/block-afsfile add|remove with XENBUS_PATH set.\n';
    return text;
  }
  let text = 'usage: afsfile COMMAND [OPTIONS]\n\nafsfile serves Xen guest disks from image files (in AFS or any file system).\n\ncommands:\n';
  for (const c of COMMANDS) text += `  ${c.name.padEnd(10)} ${c.summary}\n`;
  text += '\nRun `afsfile help COMMAND` or `afsfile COMMAND --help` for its options.\n';
  text += 'Invoked as block-afsfile, the executable is the hotplug script.\n';
  return text;
}
