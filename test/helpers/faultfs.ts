// The fault-injecting FUSE file system (test/faultfs/faultfs.c): compiled here with gcc
// against Debian's libfuse3 when missing or older than its source, mounted in this process's
// mount namespace (tests run it inside a private one: `inPrivateMountNamespace`), driven over
// its control socket.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { ROOT } from './exe';
import { until } from './wait';

const SOURCE = path.join(ROOT, 'test/faultfs/faultfs.c');
const BINARY = path.join(ROOT, 'build/faultfs/faultfs');

/** Builds build/faultfs/faultfs if needed; the reason when it cannot (no libfuse3-dev, no /dev/fuse). */
export function buildFaultfs(): string | undefined {
  if (!fs.existsSync('/dev/fuse')) return 'no /dev/fuse';
  if (fs.existsSync(BINARY) && fs.statSync(BINARY).mtimeMs >= fs.statSync(SOURCE).mtimeMs) return undefined;
  const pc = spawnSync('pkg-config', ['--cflags', '--libs', 'fuse3'], { encoding: 'utf8' });
  if (pc.status !== 0) return 'libfuse3-dev is not installed (apt-get install libfuse3-dev fuse3)';
  fs.mkdirSync(path.dirname(BINARY), { recursive: true });
  const flags = pc.stdout.trim().split(/\s+/);
  const cc = spawnSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-std=gnu11',
    ...flags.filter((f) => f.startsWith('-I')),
    '-o', BINARY, SOURCE, ...flags.filter((f) => !f.startsWith('-I'))], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`faultfs did not compile:\n${cc.stderr}`);
  return undefined;
}

/**
 * Re-runs this test file in a private mount namespace (unshare -m) so its FUSE mounts are
 * nobody else's; returns true inside it. Outside, waits for the inner run and exits with its
 * status (the runner reads the inner run's output).
 */
export function inPrivateMountNamespace(): boolean {
  if (process.env.AFSFILE_TEST_MOUNTNS === 'inner') return true;
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', process.execPath, ...process.execArgv,
    ...process.argv.slice(1)], {
    stdio: 'inherit', env: { ...process.env, AFSFILE_TEST_MOUNTNS: 'inner' },
  });
  process.exit(r.status ?? 1);
}

export interface Faultfs {
  /** Where the files are seen through the file system. */
  readonly mount: string;
  /** Where they are stored (what a store has reached). */
  readonly backing: string;
  /** Sends one control command; resolves with the reply line. */
  ctl(command: string): Promise<string>;
  stats(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export async function mountFaultfs(dir: string): Promise<Faultfs> {
  const why = buildFaultfs();
  if (why) throw new Error(`faultfs: ${why}`);
  const backing = path.join(dir, 'backing');
  const mount = path.join(dir, 'mnt');
  const sock = path.join(dir, 'faultfs.sock');
  fs.mkdirSync(backing, { recursive: true });
  fs.mkdirSync(mount, { recursive: true });
  const parentDev = fs.statSync(dir).dev;
  // max_threads: each hung request holds a thread; the others must still be served.
  const child: ChildProcess = spawn(BINARY, [backing, mount, sock, '-f', '-o', 'max_threads=256'], { stdio: ['ignore',
    'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await until(`faultfs mounted on ${mount}`, () => {
    if (child.exitCode !== null) throw new Error(`faultfs exited ${child.exitCode}: ${err}`);
    return fs.statSync(mount).dev !== parentDev && fs.existsSync(sock);
  }, 10_000);
  const ctl = (command: string): Promise<string> => new Promise((resolve, reject) => {
    const c = net.connect(sock);
    let reply = '';
    c.on('connect', () => c.write(`${command}\n`));
    c.on('data', (d) => (reply += d));
    c.on('error', reject);
    c.on('close',
      () => (reply.startsWith('error') ? reject(new Error(`faultfs ${command}: ` +
        `${reply.trim()}`)) : resolve(reply.trim())));
  });
  return {
    mount, backing, ctl,
    stats: async () => {
      const words = (await ctl('stats')).split(/\s+/);
      const out: Record<string, number> = {};
      for (let i = 0; i + 1 < words.length; i += 2) out[words[i]!] = Number(words[i + 1]);
      return out;
    },
    stop: async () => {
      await ctl('clear').catch(() => undefined);
      spawnSync('umount', ['-l', mount]);
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
