// Starting device processes (DESIGN "Identities and openers"): the supervisor does it for the
// host identity, each identity's opener for its own domains, so every device process inherits
// the PAG of the process that started it. The starter holds no image open, ever: an exec in the
// new child closes each descriptor it inherited (O_CLOEXEC), a close on AFS (afs_linux_flush)
// or FUSE (FLUSH) may store dirty data and hang on a dead file server, and uv_spawn waits for
// that exec on the main thread. Each device process opens its own image.
//
// One spare device process is kept started and waiting (`worker --spare`): a new device is
// handed to it at once, so that the hotplug script's wait never includes starting a process
// (under a busy dom0, as during `xl restore` on TCG, that took longer than libxl lets a
// script run); a new spare is started after it.
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import createDebug from 'debug';
import { deviceExec } from './device-privileges';
import { type FromDevice, type ToDevice, parseFromDevice } from './device-link';
import type { RetuneMessage } from './device-retune';
import { stderrLine } from './log';
import { selfCommand } from './reexec';

const debug = createDebug('afsfile:worker');

export interface DeviceEvents {
  message(m: FromDevice): void;
  exit(code: number | null, signal: NodeJS.Signals | null): void;
}

/** One device process, wherever it runs (here, or under an opener). */
export interface DeviceProc {
  readonly pid: number | undefined;
  send(m: ToDevice | RetuneMessage): void;
  kill(signal: NodeJS.Signals): void;
  /** Whether it has not exited yet (as far as this process knows). */
  running(): boolean;
  /** Resolves when it has exited. */
  readonly exited: Promise<void>;
}

export interface Spawner {
  /** Starts the device process for `backend` with these options (`worker --device B ...args`). */
  start(backend: string, args: readonly string[], restarts: number, ev: DeviceEvents): DeviceProc;
  /** No more spares; running device processes are left alone. */
  close(): void;
}

interface Proc {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  ready: boolean;
  ev: DeviceEvents | undefined;
}

/** Starts device processes as children of this process, with a spare kept ready. */
export class LocalSpawner implements Spawner {
  private spare: Proc | undefined;
  private closed = false;
  private spareTimer: NodeJS.Timeout | undefined;
  /** Spares that ended before they were used, recently: backs off a spare that cannot start. */
  private spareFailures = 0;

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    /** Options a spare starts with (the platform); the others come with its device. */
    private readonly spareArgs: readonly string[],
    private readonly tag = 'worker',
    /** The spare changed (started, ready, used, ended): for the status file. */
    private readonly onChange: () => void = () => undefined,
  ) {}

  /** The spare device process, for the status file. */
  spareState(): { pid: number | undefined; ready: boolean } | undefined {
    const s = this.spare;
    return s ? { pid: s.child.pid, ready: s.ready } : undefined;
  }

  /** Starts the first spare. */
  begin(): void {
    this.ensureSpare();
  }

  start(backend: string, args: readonly string[], restarts: number, ev: DeviceEvents): DeviceProc {
    const s = this.spare;
    let p: Proc;
    if (s && s.ready && s.child.connected) {
      this.spare = undefined;
      p = s;
      p.ev = ev;
      s.child.send({ t: 'assign', backend, args: [...args], restarts } satisfies ToDevice);
      debug('%s: spare %d serves %s', this.tag, s.child.pid, backend);
      // The next spare after this turn: its spawn must not delay this device's messages.
      setImmediate(() => this.ensureSpare());
    } else {
      p = this.spawnProc(['worker', '--device', backend, ...args], { AFSFILE_DEVICE_RESTARTS: String(restarts) }, ev);
    }
    const child = p.child;
    return {
      pid: child.pid,
      send: (m) => {
        if (child.connected) child.send(m, (e) => { if (e) debug('%s: not sent: %s', backend, e.message); });
      },
      kill: (sig) => { try { child.kill(sig); } catch { /* gone */ } },
      running: () => child.exitCode === null && child.signalCode === null,
      exited: p.exited,
    };
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.spareTimer);
    const s = this.spare;
    this.spare = undefined;
    if (s) try { s.child.kill('SIGTERM'); } catch { /* gone */ }
  }

  private ensureSpare(): void {
    if (this.closed || this.spare || this.spareTimer) return;
    this.spare = this.spawnProc(['worker', '--spare', ...this.spareArgs], {}, undefined);
    this.onChange();
  }

  private spawnProc(argv: string[], extraEnv: NodeJS.ProcessEnv, ev: DeviceEvents | undefined): Proc {
    const { command, args } = selfCommand();
    const stdio: StdioOptions = ['ignore', 'inherit', 'inherit', 'ipc'];
    // Without capabilities and without a ticket cache: the process faces a guest (device-privileges.ts).
    const run = deviceExec(command, [...args, ...argv], { ...this.env, ...extraEnv });
    const child = spawn(run.command, run.args, { env: run.env, stdio });
    const p: Proc = { child, ready: false, ev, exited: new Promise<void>((r) => child.once('close', () => r())) };
    child.on('message', (raw) => {
      const m = parseFromDevice(raw);
      if (!m) return;
      if (m.t === 'ready') {
        p.ready = true;
        this.spareFailures = 0;
        this.onChange();
        return;
      }
      p.ev?.message(m);
    });
    child.on('error', (e) => stderrLine(`${this.tag}: cannot start a device process: ${e.message}`));
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      if (p.ev) { p.ev.exit(code, signal); return; }
      // A spare that ended unused: another one, later and later if they keep ending.
      if (this.spare === p) this.spare = undefined;
      if (this.closed) return;
      this.spareFailures++;
      const delay = Math.min(30_000, 100 * 2 ** Math.min(this.spareFailures, 9));
      const how = signal ?? `exit status ${code}`;
      if (this.spareFailures > 3) {
        stderrLine(`${this.tag}: the spare device process ended (${how}); next one in ${delay} ms`);
      }
      this.spareTimer = setTimeout(() => { this.spareTimer = undefined; this.ensureSpare(); }, delay);
      this.spareTimer.unref();
    });
    return p;
  }
}
