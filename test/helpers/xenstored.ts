// Starts Debian's real C xenstored (xen-utils-4.17) as a private test peer: one daemon in a temp
// dir, made to run without a hypervisor by the LD_PRELOAD stub in test/xenstored/ (built here
// with gcc on first use), reachable only through its own socket. stop() kills exactly the
// process this helper started; so does the test process's exit.
import { setTimeout as sleep } from 'node:timers/promises';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');
const STUB_SRC = path.join(ROOT, 'test/xenstored/xenstored-stub.c');
const STUB_SO = path.join(ROOT, 'build/xenstored/xenstored-stub.so');

export interface Xenstored {
  /** The unix socket to connect to (pass as XENSTORED_PATH). */
  readonly socketPath: string;
  /** The daemon's temp dir (socket, pid file, trace). */
  readonly dir: string;
  /** The daemon's pid (changes on restart). */
  readonly pid: number;
  /** Kills the daemon and removes its dir. */
  stop(): Promise<void>;
  /** Kills the daemon and starts a fresh one on the same socket (the store starts empty, as a
   * restarted cxenstored without live update does). */
  restart(): Promise<void>;
}

/** The daemon binary: AFSFILE_TEST_XENSTORED, else the newest /usr/lib/xen-X.Y/bin/xenstored
 * (/usr/sbin/xenstored is a wrapper that refuses to run without /sys/hypervisor). */
export function xenstoredBinary(): string {
  const env = process.env.AFSFILE_TEST_XENSTORED;
  if (env) {
    if (!fs.existsSync(env))
      throw new Error(`xenstored not found at AFSFILE_TEST_XENSTORED=${env}: install it with test/deps.sh`);
    return env;
  }
  const dirs = fs.existsSync('/usr/lib') ? fs.readdirSync('/usr/lib').filter((d) => /^xen-\d+\.\d+$/.test(d)).sort().reverse() : [];
  for (const d of dirs) {
    const p = path.join('/usr/lib', d, 'bin/xenstored');
    if (fs.existsSync(p)) return p;
  }
  throw new Error(
    'xenstored not found: install it with test/deps.sh (apt-get install xen-utils-4.17), or set AFSFILE_TEST_XENSTORED',
  );
}

function buildStub(): string {
  const fresh = fs.existsSync(STUB_SO) && fs.statSync(STUB_SO).mtimeMs >= fs.statSync(STUB_SRC).mtimeMs;
  if (!fresh) {
    fs.mkdirSync(path.dirname(STUB_SO), { recursive: true });
    const tmp = `${STUB_SO}.${process.pid}`;
    execFileSync('gcc', ['-shared', '-fPIC', '-O2', '-Wall', '-Wextra', '-Werror', '-o', tmp, STUB_SRC, '-ldl'], {
      stdio: 'inherit',
    });
    fs.renameSync(tmp, STUB_SO);
  }
  return STUB_SO;
}

function canConnect(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

const live = new Set<ChildProcess>();
process.on('exit', () => { for (const c of live) c.kill('SIGKILL'); });

export async function startXenstored(): Promise<Xenstored> {
  const binary = xenstoredBinary();
  const stub = buildStub();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'afsfile-xenstored-'));
  const socketPath = path.join(dir, 'socket');
  fs.writeFileSync(path.join(dir, 'xsd_port'), '1\n');
  fs.writeFileSync(path.join(dir, 'xsd_kva'), Buffer.alloc(4096));
  let child: ChildProcess | undefined;
  let stderr = '';

  async function start(): Promise<void> {
    fs.rmSync(socketPath, { force: true });
    stderr = '';
    const c = spawn(binary, ['-N', '-F', path.join(dir, 'pid'), '-T', path.join(dir, 'trace')], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        LD_PRELOAD: stub,
        XENSTORED_STUB_DIR: dir,
        XENSTORED_RUNDIR: dir,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    c.stderr?.on('data', (d) => (stderr += d));
    live.add(c);
    c.once('exit', () => live.delete(c));
    child = c;
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      if (c.exitCode !== null || c.signalCode !== null) break;
      if (fs.existsSync(socketPath) && (await canConnect(socketPath))) return;
      await sleep(5);
    }
    c.kill('SIGKILL');
    throw new Error(`xenstored did not start (${binary}): ${stderr.trim() || 'no output'}`);
  }

  async function kill(): Promise<void> {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  }

  try {
    await start();
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    socketPath,
    dir,
    get pid() { return child?.pid ?? -1; },
    async stop() { await kill(); fs.rmSync(dir, { recursive: true, force: true }); },
    async restart() { await kill(); await start(); },
  };
}
