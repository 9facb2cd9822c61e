// --help text, the man page and bash completion, made from the command list and the option
// table (hidden options and commands left out), wrapped to the terminal.
import { COMMANDS, findCommand } from './commands';
import { configTemplate } from './config-template';
import { ENVIRONMENT, EXAMPLES, EXIT_STATUS } from './help-text';
import { type OptionSpec, type Role, optionsFor } from './options';

/** The words of `text` in lines of at most `width`, each after `indent` spaces. */
export function wrap(text: string, width: number, indent: number, first = indent): string {
  const out: string[] = [];
  let line = '';
  let pad = first;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && pad + line.length + 1 + word.length > width) {
      out.push(' '.repeat(pad) + line);
      line = word;
      pad = indent;
    } else line = line ? `${line} ${word}` : word;
  }
  out.push(' '.repeat(pad) + line);
  return `${out.join('\n')}\n`;
}

/** The terminal's width (COLUMNS when stdout is not one), kept within 60..120. */
function terminalWidth(): number {
  const c = process.stdout.columns ?? Number(process.env.COLUMNS);
  return Number.isFinite(c) && c > 0 ? Math.max(60, Math.min(c, 120)) : 80;
}

function flag(o: OptionSpec): string {
  return o.type === 'boolean' ? `--${o.name}` : `--${o.name} ${o.placeholder ?? 'VALUE'}`;
}

function optionHelp(o: OptionSpec): string {
  const extras: string[] = [];
  if (o.default !== undefined && o.default !== false) extras.push(`default ${String(o.default)}`);
  if (o.env) extras.push(`env ${o.env}`);
  return `${o.help}${extras.length ? ` (${extras.join('; ')})` : ''}`;
}

export function visibleOptions(role: Role): OptionSpec[] {
  return optionsFor(role).filter((o) => !o.hidden);
}

/** `  KEY   text wrapped at col`, the key on a line of its own when it does not fit. */
function table(rows: ReadonlyArray<readonly [string, string]>, width: number, col: number): string {
  return rows.map(([k, v]) => {
    const body = wrap(v, width, col);
    return k.length + 3 <= col ? `  ${k.padEnd(col - 2)}${body.slice(col)}` : `  ${k}\n${body}`;
  }).join('');
}

/** The help topics besides commands: `afsfile help config|man|completion`. */
export const TOPICS = ['config', 'man', 'completion'] as const;

export function usage(commandName?: string, width = terminalWidth()): string {
  if (commandName === 'config') return configTemplate();
  if (commandName === 'man') return manPage();
  if (commandName === 'completion') return bashCompletion();
  const cmd = commandName ? findCommand(commandName) : undefined;
  if (cmd) {
    let text = `usage: afsfile ${cmd.synopsis}\n\n${wrap(cmd.summary, width, 0)}`;
    if (cmd.role !== 'help') {
      const opts = visibleOptions(cmd.role as Role);
      const one = (o: OptionSpec): string => `  ${flag(o)}\n${wrap(optionHelp(o), width, 6)}`;
      if (opts.length) text += `\noptions:\n${opts.map(one).join('')}`;
    }
    const hotplugNote = 'libxl runs it as /etc/xen/scripts/block-afsfile add|remove with XENBUS_PATH set.';
    if (cmd.name === 'hotplug') text += `\n${wrap(hotplugNote, width, 0)}`;
    const exits = EXIT_STATUS[cmd.name];
    if (exits) text += `\nexit status:\n${table(exits, width, 8)}`;
    const ex = EXAMPLES[cmd.name];
    if (ex) text += `\nexamples:\n${ex.map((e) => `  ${e}\n`).join('')}`;
    return text;
  }
  let text = 'usage: afsfile COMMAND [OPTIONS]\n\n';
  text += wrap('afsfile serves Xen guest disks from image files (in AFS or any file system).', width, 0);
  text += '\ncommands:\n';
  text += table(COMMANDS.filter((x) => !x.hidden).map((c) => [c.name, c.summary] as const), width, 13);
  text += '\n' + wrap('Run `afsfile help COMMAND` or `afsfile COMMAND --help` for its options; ' +
    '`afsfile help config` prints a commented config file with every key. ' +
    'Invoked as block-afsfile, the executable is the hotplug script.', width, 0);
  text += `\nexit status:\n${table(EXIT_STATUS['']!, width, 8)}`;
  text += `\nenvironment:\n${table(ENVIRONMENT, width, 24)}`;
  text += `\nexamples:\n${EXAMPLES['']!.map((e) => `  ${e}\n`).join('')}`;
  return text;
}

const roff = (s: string): string => s.replace(/\\/g, '\\e').replace(/^([.'])/gm, '\\&$1').replace(/-/g, '\\-');

/** afsfile(8), in man(7) macros. */
export function manPage(): string {
  const out = ['.TH AFSFILE 8 "" "afsfile" "System Administration"', '.SH NAME',
    'afsfile \\- Xen block backend for disk images in AFS or any file system',
    '.SH SYNOPSIS', ...COMMANDS.filter((c) => !c.hidden).map((c) => `.B afsfile\n${roff(c.synopsis)}\n.br`),
    '.SH DESCRIPTION',
    roff('afsfile serves Xen guests\' virtual disks (the blkif ring protocol) from image files. Installed as ' +
      '/etc/xen/scripts/block-afsfile it is libxl\'s hotplug script; `afsfile renew -- afsfile worker` runs as ' +
      'afsfile.service.'),
    '.SH COMMANDS'];
  for (const c of COMMANDS.filter((x) => !x.hidden)) {
    out.push(`.SS ${roff(c.name)}`, roff(c.summary));
    if (c.role === 'help') continue;
    for (const o of visibleOptions(c.role as Role)) out.push('.TP', `.B ${roff(flag(o))}`, roff(optionHelp(o)));
  }
  out.push('.SH FILES', '.TP', '.B /etc/xen/afsfile.conf',
    roff('settings: key = value, keys are the long option names (afsfile help config)'),
    '.TP', '.B /run/afsfile/status/', roff('status files (afsfile status --json; schema in the README)'));
  out.push('.SH "EXIT STATUS"');
  for (const [k, v] of EXIT_STATUS['']!) out.push('.TP', `.B ${k}`, roff(v));
  out.push('.SH ENVIRONMENT');
  for (const [k, v] of ENVIRONMENT) out.push('.TP', `.B ${k}`, roff(v));
  out.push('.SH EXAMPLES', '.nf', ...EXAMPLES['']!.map(roff), '.fi',
    '.SH "SEE ALSO"', '.BR xl (1),', '.BR xl.conf (5),', '.BR systemctl (1),', '.BR k5start (1)');
  return `${out.join('\n')}\n`;
}

/** bash completion for afsfile: commands, then each command's long options. */
export function bashCompletion(): string {
  const cmds = COMMANDS.filter((c) => !c.hidden).map((c) => c.name);
  const cases = COMMANDS.filter((c) => !c.hidden && c.role !== 'help')
    .map((c) => `    ${c.name}) opts="${[...visibleOptions(c.role as Role).map((o) => `--${o.name}`), '--help'].join(' ')}" ;;`);
  return `# bash completion for afsfile (made from its option table: afsfile help completion)
_afsfile() {
  local cur=\${COMP_WORDS[COMP_CWORD]} cmd=\${COMP_WORDS[1]} opts
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${cmds.join(' ')} --help --version" -- "$cur"))
    return
  fi
  case $cmd in
${cases.join('\n')}
    help) COMPREPLY=($(compgen -W "${cmds.join(' ')} ${TOPICS.join(' ')}" -- "$cur")); return ;;
    *) opts="" ;;
  esac
  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
}
complete -F _afsfile afsfile
`;
}
