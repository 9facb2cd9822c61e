// The commented /etc/xen/afsfile.conf that install.sh writes (`afsfile help config`): every key
// the file may set, with its default, made from the option table so it never misses one.
import { type OptionSpec, OPTIONS } from './options';
import { describeRange } from './values';

function wrap(text: string, width: number, prefix: string): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && prefix.length + line.length + 1 + word.length > width) { out.push(prefix + line); line = word; } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(prefix + line);
  return out;
}

const ACCEPTS: Record<OptionSpec['type'], string> = {
  duration: 'a duration',
  size: 'a size',
  number: 'a number',
  boolean: 'yes or no',
  list: 'comma-separated; the key may repeat',
  string: '',
};

function entry(o: OptionSpec): string[] {
  const accepts = [o.choices ? `one of ${o.choices.join(', ')}` : o.integer ? 'a whole number' : ACCEPTS[o.type], describeRange(o)].filter(Boolean).join(', ');
  const lines = wrap(`${o.help}${accepts ? ` (${accepts})` : ''}.`, 78, '# ');
  const def = o.default === undefined ? '' : Array.isArray(o.default) ? o.default.join(',') : String(o.default === true ? 'yes' : o.default === false ? 'no' : o.default);
  lines.push(o.default === undefined ? `# ${o.name} =` : `# ${o.name} = ${def}`);
  return lines;
}

const SECTIONS: Array<[string, (o: OptionSpec) => boolean]> = [
  ['Every role', (o) => o.roles.includes('worker') && o.roles.includes('renew')],
  ['The worker (the data path); hold-timeout and fsync-interval reach running devices on reload', (o) => o.roles.includes('worker') && !o.roles.includes('renew')],
  ['The hotplug script (block-afsfile)', (o) => o.roles.includes('hotplug') && !o.roles.includes('worker')],
  ['Kerberos tickets and AFS tokens (afsfile renew; without a keytab it runs the worker directly)', (o) => o.roles.includes('renew') && !o.roles.includes('worker')],
];

export function configTemplate(): string {
  const out = [
    '# /etc/xen/afsfile.conf: afsfile settings, read by every role at start and on',
    '# `systemctl reload afsfile`. `key = value` lines, # comments; the keys are the long',
    '# option names (afsfile help worker, afsfile help renew), and flags override them.',
    '# Every key is shown with its default, commented out. `afsfile check` validates the file.',
    '# Durations: 30 (seconds), 30s, 500ms, 5m, 10h, 1d, or combined (1h30m).',
    '# Sizes: 512, 64K, 16M, 10G (K, M, G, T are powers of 1024: G is GiB).',
  ];
  const settable = OPTIONS.filter((o) => o.config && !o.hidden);
  const seen = new Set<string>();
  for (const [title, pick] of SECTIONS) {
    const group = settable.filter((o) => pick(o) && !seen.has(o.name));
    if (!group.length) continue;
    out.push('', ...wrap(`${title}:`, 78, '# '));
    for (const o of group) { seen.add(o.name); out.push('#', ...entry(o)); }
  }
  const rest = settable.filter((o) => !seen.has(o.name));
  if (rest.length) { out.push('', '# Other:'); for (const o of rest) out.push('#', ...entry(o)); }
  out.push('', '# Per-domain Kerberos identities (each in a PAG of its own; renew\'s keys above apply to all,',
    '# except where a line gives cell=, lifetime=, margin= or retry-cap= of its own):',
    '# identity.LABEL = keytab=FILE domains=NAME,... [principal=NAME] [cell=CELL,...] [lifetime=D] [margin=D] ' +
      '[retry-cap=D]',
    '# identity.web = keytab=/etc/xen/afsfile/web.keytab domains=web1,web2',
    '# identity.batch = keytab=/etc/xen/afsfile/batch.keytab domains=batch1 lifetime=1d margin=30m');
  return `${out.join('\n')}\n`;
}
