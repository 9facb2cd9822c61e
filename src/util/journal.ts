// Priorities for the journal: when stderr is the journal stream (JOURNAL_STREAM holds its
// "DEV:INODE", systemd.exec(5)), journald reads a "<N>" line prefix as the syslog priority
// (sd-daemon(3)). Elsewhere (a terminal, xl's pipe for the hotplug script) nothing changes.
import * as fs from 'node:fs';

export type Priority = 'err' | 'warning' | 'info' | 'debug';
const CODE: Record<Priority, number> = { err: 3, warning: 4, info: 6, debug: 7 };

let active = false;

export function stderrIsJournal(env: NodeJS.ProcessEnv): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fs.fstatSync(2, { bigint: true });
    return String(st.dev) === m[1] && String(st.ino) === m[2];
  } catch {
    return false;
  }
}

/** "<3>" etc. when the journal reads stderr, else "". */
export function prio(p: Priority): string {
  return active ? `<${CODE[p]}>` : '';
}

/** Every stderr line without a prefix gets one: debug namespaces <7>, the rest <6>. */
export function installJournalPriorities(env: NodeJS.ProcessEnv): void {
  if (active || !stderrIsJournal(env)) return;
  active = true;
  type Write = (chunk: string, cb?: (e?: Error | null) => void) => boolean;
  const write = process.stderr.write.bind(process.stderr) as Write;
  let atLineStart = true;
  const prefixed = (text: string): string => {
    const parts = text.split('\n');
    const out = parts.map((p, i) => {
      if (!(i > 0 || atLineStart) || p === '' || /^<[0-7]>/.test(p)) return p;
      return `${/^\s*afsfile:[\w-]+ /.test(p) ? '<7>' : '<6>'}${p}`;
    });
    atLineStart = text.endsWith('\n');
    return out.join('\n');
  };
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    const cb = rest.find((r): r is (e?: Error | null) => void => typeof r === 'function');
    return write(prefixed(text), cb);
  }) as typeof process.stderr.write;
}
