// The scaffolding of the renew process tests: a private KDC, recording wrappers for kinit and
// aklog, a child command that reports what it sees, and dist/afsfile renew started on top.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXE, tempDir } from '../helpers/exe';
import { TestKdc } from '../helpers/kdc';
import { until } from '../helpers/wait';
import { alive } from '../helpers/proc-tree';

// kinit as renew finds it on PATH: one line per invocation, then the real one.
const KINIT = `#!/bin/sh
echo "$(date +%s.%N)" >> "$RIG/kinit.log"
exec /usr/bin/kinit "$@"
`;

// The configurable aklog (OpenAFS style, -c CELL): records that it got a valid cache (klist -s)
// and which session keyring it runs in; fails with the status in $RIG/aklog.exit when that file
// exists; otherwise sets a one-hour token for the cell, unless $RIG/aklog.notoken exists (an
// aklog that exits 0 without a token).
const AKLOG = `#!/bin/sh
valid=no; klist -s && valid=yes
echo "$(date +%s.%N) valid=$valid ses=$(keyctl id @s 2>/dev/null) ccache=$KRB5CCNAME args=$*" >> "$RIG/aklog.log"
[ -f "$RIG/aklog.exit" ] && exit "$(cat "$RIG/aklog.exit")"
[ -f "$RIG/aklog.notoken" ] && exit 0
cell=test.local; [ "$1" = -c ] && cell=$2
{ grep -v " for $cell " "$RIG/tokens.txt" 2>/dev/null
  echo "User's (AFS ID 1000) rxkad tokens for $cell [Expires $(date -u -d '+1 hour' '+%b %d %H:%M')]"
} > "$RIG/tokens.tmp"; mv "$RIG/tokens.tmp" "$RIG/tokens.txt"
exit 0
`;

// OpenAFS `tokens` for the token aklog-rec set (the host has no AFS client to ask): the real
// layout, so renew parses it as it parses the real one.
const TOKENS = `#!/bin/sh
echo
echo "Tokens held by the Cache Manager:"
echo
[ -f "$RIG/tokens.txt" ] && cat "$RIG/tokens.txt"
echo "   --End of list--"
`;

// aklog-kafs as kafs-client 0.5 behaves where the kernel has no rxrpc key type (this host): it
// takes the cell positionally, rejects options with getopt's message and exits 0, and sets no
// key. Records its arguments.
const AKLOG_KAFS = `#!/bin/sh
echo "$(date +%s.%N) args=$*" >> "$RIG/aklog-kafs.log"
case "$1" in -*) echo "aklog-kafs: invalid option -- '\${1#-}'" >&2; exit 0 ;; esac
exit 0
`;

// The child: reports its environment and keyring, then waits; a forwarded signal makes it
// record the signal and exit 40 + n (TERM 15 → 55, INT 2 → 42, HUP 1 → 41).
const CHILD = `#!/bin/sh
# The traps first: a signal sent as soon as child.env exists must find them.
trap 'echo TERM >> "$RIG/child.signals"; exit 55' TERM
trap 'echo INT >> "$RIG/child.signals"; exit 42' INT
trap 'echo HUP >> "$RIG/child.signals"; exit 41' HUP
{
  echo "renewpid=$AFSFILE_RENEW_PID"
  echo "ccache=$KRB5CCNAME"
  echo "ses=$(keyctl id @s 2>/dev/null)"
  echo "pid=$$"
} > "$RIG/child.tmp" && mv "$RIG/child.tmp" "$RIG/child.env"
while :; do sleep 0.1; done
`;

export interface Rig {
  readonly dir: string;
  readonly kdc: TestKdc;
  readonly bin: string;
  readonly runDir: string;
  readonly env: NodeJS.ProcessEnv;
  file(name: string): string;
  lines(name: string): string[];
  cleanup(): Promise<void>;
}

export async function makeRig(): Promise<Rig> {
  const { dir, cleanup } = tempDir('afsfile-renew-');
  let kdc: TestKdc;
  try {
    fs.chmodSync(dir, 0o755);
    kdc = await TestKdc.create();
  } catch (err) {
    cleanup();
    throw err;
  }
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  for (const [name, text] of [['kinit', KINIT], ['aklog-rec', AKLOG], ['tokens', TOKENS], ['aklog-kafs', AKLOG_KAFS], ['child', CHILD]] as const) {
    fs.writeFileSync(path.join(bin, name), text, { mode: 0o755 });
  }
  const conf = path.join(dir, 'afsfile.conf');
  fs.writeFileSync(conf, '# empty: every test passes its options as flags\n');
  const env = { ...kdc.env, PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, RIG: dir, AFSFILE_CONFIG: conf, SHELL: '/bin/sh' };
  const file = (name: string) => path.join(dir, name);
  return {
    dir, kdc, bin, env, runDir: path.join(dir, 'run'), file,
    lines: (name) => (fs.existsSync(file(name)) ? fs.readFileSync(file(name), 'utf8').split('\n').filter(Boolean) : []),
    cleanup: async () => { await kdc.destroy(); cleanup(); },
  };
}

export interface Renew {
  readonly proc: ChildProcess;
  stderr(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The child's report (child.env), once it has written it. */
  childInfo(): Promise<Record<string, string>>;
  status(): Record<string, unknown> | undefined;
  kill(): Promise<void>;
}

/** `dist/afsfile renew --keytab ... --run-dir ... <extra> -- child`, short lifetimes. */
export function startRenew(rig: Rig, extra: string[], command: string[] = [path.join(rig.bin, 'child')], opts: { aklog?: string; env?: NodeJS.ProcessEnv; runDir?: string; cellsFromConfig?: boolean } = {}): Renew {
  for (const f of ['child.env', 'child.signals']) fs.rmSync(rig.file(f), { force: true });
  fs.rmSync(path.join(opts.runDir ?? rig.runDir, 'status', 'renew.json'), { force: true });
  const runDir = opts.runDir ?? rig.runDir;
  const args = ['renew', `--run-dir=${runDir}`, `--aklog=${opts.aklog ?? path.join(rig.bin, 'aklog-rec')}`, ...(extra.some((a) => a.startsWith('--cell=')) || opts.cellsFromConfig ? [] : ['--cell=test.local']), ...extra, '--', ...command];
  const proc = spawn(EXE, args, { env: { ...rig.env, ...opts.env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const statusFile = path.join(runDir, 'status', 'renew.json');
  return {
    proc,
    stderr: () => err,
    exited,
    childInfo: async () => {
      const text = await until('the child to report', () => (fs.existsSync(rig.file('child.env')) ? fs.readFileSync(rig.file('child.env'), 'utf8') : undefined), 10_000);
      return Object.fromEntries(text.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    },
    status: () => {
      try { return JSON.parse(fs.readFileSync(statusFile, 'utf8')) as Record<string, unknown>; } catch { return undefined; }
    },
    kill: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

/** Session keyring of a process started by the test (what the caller of renew has). */
export function callerSessionKeyring(): string {
  return execFileSync('keyctl', ['id', '@s'], { encoding: 'utf8' }).trim();
}

export const KEYTAB_ARGS = (rig: Rig) => [`--keytab=${rig.kdc.keytab}`];

/** LISTEN sockets (tcp, tcp6) whose inode one of `pid`'s descriptors holds: an inspector would be one. */
export function listeningSocketsOf(pid: number): string[] {
  const mine = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) mine.add(m[1]!);
    } catch { /* closed meanwhile */ }
  }
  const found: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(table)) continue;
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A' && mine.has(f[9]!)) found.push(`${table} ${f[1]}`);
    }
  }
  return found;
}

export function environOf(pid: number): string[] {
  return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
}

export function ppidOf(pid: number): number {
  return Number(/^PPid:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
}

export { alive };

/** Seconds (float) recorded at the start of each line of a rig log. */
export function times(lines: string[]): number[] {
  return lines.map((l) => Number(l.split(' ')[0]));
}
