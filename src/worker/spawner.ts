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
//
// Device hosts (`isolation`, DESIGN "Process model"): a spare that was given a device of a
// group (all devices of this starter's identity, or of one domain) hosts that group: later
// devices of the group are assigned to it instead of consuming a spare, so an idle disk costs
// its per-device state and not a Node process each. It exits when its last device ended.
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
  /** shared: the process ended (crashed) while it served other devices too: no one device's doing. */
  exit(code: number | null, signal: NodeJS.Signals | null, shared?: boolean): void;
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
  /**
   * Starts serving `backend` with these options (`worker --device B ...args`): in the device
   * host of `group` if one runs, else in the spare (which becomes that group's host), else in a
   * process of its own. No group: a process of its own (the spare, or a new one).
   */
  start(backend: string, args: readonly string[], restarts: number, ev: DeviceEvents, group?: string): DeviceProc;
  /** No more spares; running device processes are left alone. */
  close(): void;
}

/** One device served by a process. */
interface Slot {
  readonly ev: DeviceEvents;
  alive: boolean;
  readonly exited: Promise<void>;
  resolveExited(): void;
}

interface Proc {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  ready: boolean;
  /** The devices it serves now (one for `--device`; a host, assigned by `assign`, any number). */
  readonly slots: Map<string, Slot>;
  /** Started with `--spare`: devices come by `assign`, and end by `ended` messages. */
  readonly host: boolean;
  /** The group it hosts (while it may be assigned more devices of it). */
  group: string | undefined;
  /** Messages for a host still starting, sent when it is ready. */
  readonly queued: object[];
}

/** Starts device processes as children of this process, with a spare kept ready. */
export class LocalSpawner implements Spawner {
  private spare: Proc | undefined;
  /** Device hosts by group, while they take more devices. */
  private readonly hosts = new Map<string, Proc>();
  /** Every process started and not yet ended. */
  private readonly procs = new Set<Proc>();
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

  /** The device hosts: pid and how many devices each serves (for the status file). */
  hostState(): Array<{ group: string; pid: number | undefined; devices: number }> {
    return [...this.hosts].map(([group, p]) => ({ group, pid: p.child.pid, devices: p.slots.size }));
  }

  /** Starts the first spare. */
  begin(): void {
    this.ensureSpare();
  }

  start(backend: string, args: readonly string[], restarts: number, ev: DeviceEvents, group?: string): DeviceProc {
    const assign = { t: 'assign', backend, args: [...args], restarts } satisfies ToDevice;
    const host = group === undefined ? undefined : this.hosts.get(group);
    const s = this.spare;
    let p: Proc;
    if (host && host.child.connected && !host.slots.has(backend)) {
      p = host;
      this.post(host, assign);
      debug('%s: host %d (%s) serves %s too', this.tag, host.child.pid, group, backend);
    } else if (s && s.child.connected && (s.ready || group !== undefined)) {
      // A spare still starting is taken too when it is to host a group: the devices of a
      // restarted worker all come at once, and each would otherwise get a process of its own.
      this.spare = undefined;
      p = s;
      this.post(s, assign);
      if (group !== undefined) {
        s.group = group;
        this.hosts.set(group, s);
      }
      debug('%s: spare %d serves %s', this.tag, s.child.pid, backend);
      // The next spare after this turn: its spawn must not delay this device's messages.
      setImmediate(() => this.ensureSpare());
    } else if (group !== undefined) {
      // No spare: a new host for the group, told its devices once it says it is ready.
      p = this.spawnProc(['worker', '--spare', ...this.spareArgs], {}, true);
      p.group = group;
      this.hosts.set(group, p);
      this.post(p, assign);
      debug('%s: new host %d (%s) for %s', this.tag, p.child.pid, group, backend);
    } else {
      const env = { AFSFILE_DEVICE_RESTARTS: String(restarts) };
      p = this.spawnProc(['worker', '--device', backend, ...args], env, false);
    }
    let resolveExited!: () => void;
    const exited = new Promise<void>((r) => (resolveExited = r));
    const slot: Slot = { ev, alive: true, resolveExited: () => resolveExited(), exited };
    p.slots.set(backend, slot);
    const child = p.child;
    return {
      pid: child.pid,
      send: (m) => {
        if (!slot.alive) return;
        // A host routes by backend (a verdict, a retune); one device's process ignores the field.
        this.post(p, { ...m, backend });
      },
      kill: (sig) => {
        if (!slot.alive) return;
        // In a host SIGTERM is this device's alone; SIGKILL (a stuck stop) ends the whole process.
        // A host still starting serves nothing yet: the signal goes to the process.
        if (p.host && p.ready && sig !== 'SIGKILL') {
          this.post(p, { t: 'stop', backend } satisfies ToDevice);
          return;
        }
        try { child.kill(sig); } catch { /* gone */ }
      },
      running: () => slot.alive,
      exited: slot.exited,
    };
  }

  /** Resolves when every process started here has ended (after close, once their devices have:
   * a host exits when its last device ended). */
  async allEnded(): Promise<void> {
    await Promise.all([...this.procs].map((p) => p.exited));
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.spareTimer);
    const s = this.spare;
    this.spare = undefined;
    if (s) try { s.child.kill('SIGTERM'); } catch { /* gone */ }
  }

  /** To a process, once it is ready (a host still starting gets it when it says so). */
  private post(p: Proc, m: object): void {
    if (!p.child.connected) return;
    if (p.host && !p.ready) { p.queued.push(m); return; }
    p.child.send(m, (e) => { if (e) debug('%s: not sent: %s', p.child.pid, e.message); });
  }

  /** A device of `p` ended: to its owner, as a process's exit. A host left with none exits. */
  private end(
    p: Proc, backend: string, slot: Slot, code: number | null, signal: NodeJS.Signals | null, shared = false,
  ): void {
    if (!slot.alive) return;
    slot.alive = false;
    if (p.slots.get(backend) === slot) p.slots.delete(backend);
    slot.resolveExited();
    slot.ev.exit(code, signal, shared);
    if (p.host && p.slots.size === 0 && p.child.exitCode === null && p.child.signalCode === null) {
      if (p.group !== undefined && this.hosts.get(p.group) === p) this.hosts.delete(p.group);
      p.group = undefined;
      this.post(p, { t: 'exit' } satisfies ToDevice);
      this.onChange();
    }
  }

  private ensureSpare(): void {
    if (this.closed || this.spare || this.spareTimer) return;
    this.spare = this.spawnProc(['worker', '--spare', ...this.spareArgs], {}, true);
    this.onChange();
  }

  private spawnProc(argv: string[], extraEnv: NodeJS.ProcessEnv, host: boolean): Proc {
    const { command, args } = selfCommand();
    const stdio: StdioOptions = ['ignore', 'inherit', 'inherit', 'ipc'];
    // Without capabilities and without a ticket cache: the process faces a guest (device-privileges.ts).
    const run = deviceExec(command, [...args, ...argv], { ...this.env, ...extraEnv });
    const child = spawn(run.command, run.args, { env: run.env, stdio });
    const p: Proc = {
      child, ready: false, slots: new Map(), host, group: undefined, queued: [],
      exited: new Promise<void>((r) => child.once('close', () => r())),
    };
    this.procs.add(p);
    void p.exited.then(() => this.procs.delete(p));
    child.on('message', (raw) => {
      const m = parseFromDevice(raw);
      if (!m) return;
      if (m.t === 'ready') {
        p.ready = true;
        this.spareFailures = 0;
        for (const q of p.queued.splice(0)) this.post(p, q);
        this.onChange();
        return;
      }
      // Only devices given to this process: a device process faces a guest, trust nothing.
      const backend = m.backend ?? (p.host ? undefined : [...p.slots.keys()][0]);
      const slot = backend === undefined ? undefined : p.slots.get(backend);
      if (!slot || !slot.alive) return;
      if (m.t === 'ended') this.end(p, backend!, slot, m.code, null);
      else slot.ev.message(m);
    });
    child.on('error', (e) => stderrLine(`${this.tag}: cannot start a device process: ${e.message}`));
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      if (p.group !== undefined && this.hosts.get(p.group) === p) this.hosts.delete(p.group);
      const served = p.slots.size > 0;
      const shared = p.slots.size > 1;
      for (const [backend, slot] of [...p.slots]) this.end(p, backend, slot, code, signal, shared);
      if (served || p !== this.spare) return;
      // A spare that ended unused: another one, later and later if they keep ending.
      this.spare = undefined;
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
