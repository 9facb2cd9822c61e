// The supervisor's side of one identity's opener (opener.ts): starts it inside a new PAG through
// the wrapper renew uses (src/renew/pag.ts), restarts it with back-off if it ends, and stands
// for its device processes (a Spawner), whose messages it carries.
import { type ChildProcess, spawn } from 'node:child_process';
import createDebug from 'debug';
import { type PagWrapper, choosePagWrapper, realHost, wrapperCommand } from '../renew/pag';
import type { ToDevice } from './device-link';
import type { RetuneMessage } from './device-retune';
import { stderrLine } from './log';
import { type OpenerConfig, type ToOpener, parseFromOpener } from './opener-link';
import { selfCommand } from './reexec';
import { RestartPolicy } from './restart-policy';
import type { DeviceEvents, DeviceProc, Spawner } from './spawner';

const debug = createDebug('afsfile:worker');

export interface OpenerHandleOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly runDir: string;
  /** Options each of its spare device processes starts with (the platform). */
  readonly spareArgs: readonly string[];
  /** auto, pagsh or keyctl: as renew's --pag-wrapper. */
  readonly pagWrapper: string;
  /** It started, ended, or a device's pid became known: for the status file. */
  readonly onChange: () => void;
}

interface Remote {
  readonly ev: DeviceEvents;
  /** Not sent yet: the opener is starting (again). */
  pending: { args: string[]; restarts: number; group: string | undefined } | undefined;
  pid: number | undefined;
  alive: boolean;
  readonly exited: Promise<void>;
  resolveExited(): void;
}

export class OpenerHandle implements Spawner {
  private proc: ChildProcess | undefined;
  private readonly devices = new Map<string, Remote>();
  private closed = false;
  private readonly policy = new RestartPolicy(1_000_000, 60_000, 500, 30_000);
  private restartTimer: NodeJS.Timeout | undefined;
  /** Why it could not be started or ended, for the status and hotplug errors. */
  problem: string | undefined;

  constructor(readonly label: string, private config: OpenerConfig, private readonly o: OpenerHandleOptions) {}

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  begin(): void {
    this.launch();
  }

  /** New settings for the identity (SIGHUP): its renewal loop takes them and refreshes now. */
  configure(config: OpenerConfig): void {
    this.config = config;
    this.send({ t: 'config', config });
  }

  start(backend: string, args: readonly string[], restarts: number, ev: DeviceEvents, group?: string): DeviceProc {
    const old = this.devices.get(backend);
    if (old?.alive) this.ended(backend, old, null, 'SIGKILL');
    let resolveExited!: () => void;
    const exited = new Promise<void>((r) => (resolveExited = r));
    const pending = { args: [...args], restarts, group };
    const r: Remote = { ev, pid: undefined, alive: true, exited, resolveExited, pending };
    this.devices.set(backend, r);
    // No opener right now (starting again after it ended): sent when it runs.
    if (this.proc?.connected) this.sendStart(backend, r);
    return {
      get pid() { return r.pid; },
      send: (m: ToDevice | RetuneMessage) => { if (r.alive) this.send({ t: 'to-device', backend, m }); },
      kill: (signal) => {
        if (r.alive) this.send({ t: 'kill', backend, signal: signal === 'SIGKILL' ? 'SIGKILL' : 'SIGTERM' });
      },
      running: () => r.alive,
      exited,
    };
  }

  /** Stops the opener: its devices quiesce (SIGTERM) and it exits; resolves when it has. */
  async stop(): Promise<void> {
    this.closed = true;
    clearTimeout(this.restartTimer);
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((r) => p.once('close', () => r()));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
    await gone;
    clearTimeout(t);
  }

  close(): void {
    void this.stop();
  }

  private sendStart(backend: string, r: Remote): void {
    const s = r.pending;
    if (!s) return;
    r.pending = undefined;
    const group = s.group === undefined ? {} : { group: s.group };
    this.send({ t: 'start', backend, args: s.args, restarts: s.restarts, ...group });
  }

  private send(m: ToOpener): void {
    const p = this.proc;
    if (p?.connected) p.send(m, (e) => { if (e) debug('identity %s: not sent: %s', this.label, e.message); });
  }

  private ended(backend: string, r: Remote, code: number | null, signal: string | null, shared = false): void {
    if (!r.alive) return;
    r.alive = false;
    r.resolveExited();
    if (this.devices.get(backend) === r) this.devices.delete(backend);
    r.ev.exit(code, signal as NodeJS.Signals | null, shared);
  }

  private launch(): void {
    if (this.closed) return;
    const choice = choosePagWrapper(this.o.pagWrapper as 'auto' | PagWrapper, realHost(this.o.env));
    if ('error' in choice) {
      this.problem = choice.error;
      stderrLine(`identity ${this.label}: ${choice.error}`, 'err');
      this.o.onChange();
      return;
    }
    const { command, args } = selfCommand();
    const inner = [command, ...args, 'worker', '--opener', this.label, `--run-dir=${this.o.runDir}`,
      `--opener-pag=${choice.wrapper}`, ...this.o.spareArgs];
    const env = { ...this.o.env };
    // renew's cache and pid belong to the host identity: never this one's.
    for (const k of ['KRB5CCNAME', 'AFSFILE_RENEW_PID', 'AFSFILE_RENEW_START']) delete env[k];
    const w = wrapperCommand(choice, inner, env);
    const [file, ...rest] = w.argv;
    const p = spawn(file!, rest, { env: w.env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.proc = p;
    this.problem = undefined;
    p.on('error', (e) => {
      this.problem = `cannot start: ${e.message}`;
      stderrLine(`identity ${this.label}: ${this.problem}`, 'err');
    });
    p.on('message', (raw) => {
      const m = parseFromOpener(raw);
      const r = m ? this.devices.get(m.backend) : undefined;
      if (!m || !r || !r.alive) return;
      if (m.t === 'started') { r.pid = m.pid; this.o.onChange(); }
      else if (m.t === 'from-device') r.ev.message(m.m);
      else this.ended(m.backend, r, m.code, m.signal, m.shared === true);
    });
    p.once('close', (code, signal) => this.onExit(p, code, signal));
    this.send({ t: 'config', config: this.config });
    for (const [backend, r] of this.devices) this.sendStart(backend, r);
    debug('identity %s: opener %d started (%s)', this.label, p.pid, choice.wrapper);
    this.o.onChange();
  }

  private onExit(p: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.proc !== p) return;
    this.proc = undefined;
    // Its device processes saw it go (IPC disconnect) and quiesce: to the supervisor they ended.
    for (const [backend, r] of [...this.devices]) this.ended(backend, r, null, 'SIGKILL');
    this.o.onChange();
    if (this.closed) return;
    const delay = this.policy.crashed() ?? 30_000;
    this.problem = `its process ended (${signal ?? `exit status ${code}`}); starting it again in ${delay} ms`;
    stderrLine(`identity ${this.label}: ${this.problem}`, 'warning');
    this.restartTimer = setTimeout(() => { this.restartTimer = undefined; this.launch(); }, delay);
  }
}
