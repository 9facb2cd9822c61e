// The supervisor (DESIGN contracts, Process model and hotplug <-> worker): watches
// /local/domain/<self>/backend/{vbd,vbd3}, claims the devices whose script is block-afsfile
// (never touching any other), keeps the exclusivity table, runs one child process per device and
// restarts crashed ones, and cleans up after guests that died (@releaseDomain).
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import createDebug from 'debug';
import { XenbusState, parseState, stateName } from '../xen/xenbus-state';
import { isXenStoreError, type Watch } from '../xen/xenstore';
import type { XenStoreClient } from '../xen/xenstore-client';
import { BACKEND_KINDS, type BackendPath, deviceOf, kindRoot, parseBackendPath, statusName } from './backend-path';
import { Image } from '../image/image';
import { type ClaimLimits, claimDevice, imagePathFromParams, openFailure, readOnlyFromMode, reportError, reportOpened } from './device';
import { deviceExec } from './device-privileges';
import { handedImageEnv } from './handed-image';
import { type DeviceRetune, retuneMessage } from './device-retune';
import { EXIT_PERMANENT } from './exit-codes';
import { ExclusivityTable, conflictMessage } from './exclusivity';
import { stderrLine } from './log';
import { isOurScript } from './params';
import { selfCommand } from './reexec';
import { RestartPolicy } from './restart-policy';
import { removeStatus, writeStatus } from './status-file';
import { Rerun } from '../util/rerun';

const debug = createDebug('afsfile:worker');

/** What a reloaded config (SIGHUP) changes: `timings` at once, the rest for devices claimed
 * from then on (a device keeps what it advertised and how its image was opened). */
export interface SupervisorSettings {
  readonly features: ClaimLimits;
  /** Open images with O_DIRECT (--direct; the children get the same flag). */
  readonly direct: boolean;
  /** --image-roots: images are opened beneath one of these (src/image/open-beneath.ts). */
  readonly imageRoots: readonly string[];
  /** Options passed on to every child (after `worker --device <path>`), but the timings. */
  readonly childArgs: readonly string[];
  readonly timings: DeviceRetune;
}

export interface SupervisorOptions extends SupervisorSettings {
  readonly xs: XenStoreClient;
  readonly selfDomid: number;
  readonly runDir: string;
  readonly env: NodeJS.ProcessEnv;
  /** Called with the claim latency of each claimed device (ms since the supervisor saw it). */
  readonly onClaim?: (backend: string, ms: number) => void;
}

type Phase = 'running' | 'restarting' | 'refused' | 'failed' | 'closed';

interface Entry {
  readonly b: BackendPath;
  phase: Phase;
  child: ChildProcess | undefined;
  restarts: number;
  readonly policy: RestartPolicy;
  image: string | undefined;
  writable: boolean;
  /** The image, opened by the supervisor and handed to each device process it starts. */
  file: Image | undefined;
  /** The settings the device was claimed with (a restarted process gets the same). */
  readonly settings: SupervisorSettings;
  message: string | undefined;
  restartTimer: NodeJS.Timeout | undefined;
}

export class Supervisor {
  private readonly devices = new Map<string, Entry>();
  /** Backend dirs seen with another script: never touched again while they exist. */
  private readonly foreign = new Set<string>();
  /** Backend dirs of guests that are gone, released but not yet removed by the toolstack. */
  private readonly released = new Set<string>();
  private readonly table = new ExclusivityTable();
  private readonly watches: Watch[] = [];
  private readonly busy = new Map<string, Rerun>();
  private stopping = false;
  private statusTimer: NodeJS.Timeout | undefined;
  /** Claim latencies (ms from the watch event to InitWait committed), the last 100. */
  private readonly claimMs: number[] = [];
  private readonly started = new Date().toISOString();
  private settings: SupervisorSettings;

  constructor(private readonly o: SupervisorOptions) {
    this.settings = {
      features: o.features, direct: o.direct, imageRoots: o.imageRoots, childArgs: o.childArgs, timings: o.timings,
    };
  }

  /** SIGHUP: the new settings; running device processes get the new timings at once. */
  reconfigure(s: SupervisorSettings): void {
    this.settings = s;
    for (const d of this.devices.values()) {
      if (d.child?.connected) d.child.send(retuneMessage(s.timings), (e) => { if (e) debug('%s: retune not sent: %s', d.b.path, e.message); });
    }
  }

  async start(): Promise<void> {
    for (const kind of BACKEND_KINDS) {
      const root = kindRoot(this.o.selfDomid, kind);
      this.watches.push(await this.o.xs.watch(root, (p) => this.onEvent(root, p)));
    }
    this.watches.push(await this.o.xs.watch('@releaseDomain', () => void this.onReleaseDomain()));
    this.writeStatusFile();
    // `updated` stays fresh so a reader can tell a live supervisor from a stuck one.
    this.statusTimer = setInterval(() => this.writeStatusFile(), 10_000);
    this.statusTimer.unref();
  }

  private onEvent(root: string, path: string): void {
    if (this.stopping) return;
    const seenAt = performance.now();
    if (path === root) {
      // Initial event (also after a xenstored restart), or the whole dir changed: rescan.
      void this.scan(root);
      return;
    }
    const b = deviceOf(path);
    if (b) this.examine(b, seenAt);
    else {
      // A frontend-domain dir (backend/vbd/<domid>) appeared or went: rescan it.
      const m = /^(.*\/backend\/vbd3?\/\d+)$/.exec(path);
      if (m) void this.scanDomain(m[1]!);
    }
  }

  private async scan(root: string): Promise<void> {
    const doms = await this.o.xs.directory(root).catch(() => [] as string[]);
    await Promise.all(doms.map((d) => this.scanDomain(`${root}/${d}`)));
    // Devices whose dirs vanished while we were not looking (e.g. a xenstored restart).
    for (const [path, d] of this.devices) if (path.startsWith(`${root}/`)) this.examine(d.b, performance.now());
  }

  private async scanDomain(dir: string): Promise<void> {
    const devs = await this.o.xs.directory(dir).catch(() => [] as string[]);
    for (const dev of devs) {
      const b = parseBackendPath(`${dir}/${dev}`);
      if (b) this.examine(b, performance.now());
    }
  }

  /** Serialises work per device: events arriving meanwhile cause one more pass. */
  private examine(b: BackendPath, seenAt: number): void {
    let r = this.busy.get(b.path);
    if (!r) {
      r = new Rerun(() => this.examineOnce(b, seenAt), {
        stop: () => this.stopping,
        onError: (e) => {
          if (!isXenStoreError(e, 'ECONNRESET')) stderrLine(`${b.path}: ${(e as Error).stack ?? String(e)}`, 'err');
        },
        onIdle: () => this.busy.delete(b.path),
      });
      this.busy.set(b.path, r);
    }
    r.request();
  }

  private async examineOnce(b: BackendPath, seenAt: number): Promise<void> {
    if (this.stopping) return;
    const xs = this.o.xs;
    let known = this.devices.get(b.path);
    const [script, stateText, online] = await Promise.all([
      xs.tryRead(`${b.path}/script`), xs.tryRead(`${b.path}/state`), xs.tryRead(`${b.path}/online`),
    ]);
    if (stateText === undefined && script === undefined) {
      this.foreign.delete(b.path);
      this.released.delete(b.path);
      if (known) this.forget(known, 'its backend directory was removed');
      return;
    }
    if (script === undefined) return; // libxl writes everything in one transaction; wait
    if (!isOurScript(script)) {
      if (!this.foreign.has(b.path)) debug('%s: script %s is not ours; leaving it alone', b.path, script);
      this.foreign.add(b.path);
      return;
    }
    this.foreign.delete(b.path);
    const state = parseState(stateText);
    const fresh = state === XenbusState.Initialising && online?.trim() === '1';
    // libxl re-creates a dir in one transaction (rm + mkdir), so a reused backend path may never
    // be seen gone: Initialising again means a new device.
    if (fresh) this.released.delete(b.path);
    if (this.released.has(b.path)) return;
    if (known && fresh && (known.phase === 'closed' || known.phase === 'refused' || known.phase === 'failed')) {
      this.devices.delete(b.path);
      this.letGo(known);
      known = undefined;
    }
    if (!known) {
      if (state === XenbusState.Initialising) {
        // online must be 1 (libxl writes it in the same transaction); claimDevice re-checks the
        // state inside its transaction, so a racing second pass does nothing.
        const settings = this.settings;
        if (online?.trim() !== '1' || !(await claimDevice(xs, b.path, settings.features))) return;
        const ms = performance.now() - seenAt;
        debug('%s: claimed (InitWait) %s ms after the event', b.path, ms.toFixed(2));
        this.o.onClaim?.(b.path, ms);
        this.claimMs.push(ms);
        if (this.claimMs.length > 100) this.claimMs.shift();
        await this.admit(b, settings);
      } else if (state !== undefined && state >= XenbusState.InitWait && state <= XenbusState.Closing) {
        // Still being served (or being removed) from before this supervisor started: re-attach.
        // One that was refused or failed stays refused without taking the image in the table,
        // so the table is rebuilt from the devices that really use their images.
        const status = await xs.tryRead(`${b.path}/afsfile-status`);
        const inError = status === 'error' || status === 'busy';
        stderrLine(`${b.path}: adopting a device in state ${stateName(state)}${inError ? ' (in error: not restarted)' : ''}`,
          inError ? 'warning' : 'info');
        if (inError) {
          this.devices.set(b.path, {
            b, phase: 'refused', child: undefined, restarts: 0, policy: new RestartPolicy(), image: undefined,
            writable: false, file: undefined, settings: this.settings, message: await xs.tryRead(`${b.path}/afsfile-error`), restartTimer: undefined,
          });
          this.writeStatusFile();
          if (online?.trim() === '0' && state === XenbusState.Closing) await xs.write(`${b.path}/state`, String(XenbusState.Closed));
        } else {
          await this.admit(b, this.settings);
        }
      }
      return;
    }
    // A device refused for a conflict has no child: answer libxl's removal ourselves.
    if ((known.phase === 'refused' || known.phase === 'failed') && online?.trim() === '0' && state === XenbusState.Closing) {
      await xs.write(`${b.path}/state`, String(XenbusState.Closed));
    }
  }

  /**
   * Opens the image, takes it in the exclusivity table, starts the device process with the open
   * fd and reports `opened`. The supervisor opens (it runs in the same PAG) so that the hotplug
   * script's wait never includes starting a process: under a busy dom0 (xl restore under TCG)
   * that took longer than libxl lets a hotplug script run.
   */
  private async admit(b: BackendPath, settings: SupervisorSettings): Promise<void> {
    const xs = this.o.xs;
    const [params, mode] = await Promise.all([xs.tryRead(`${b.path}/params`), xs.tryRead(`${b.path}/mode`)]);
    const d: Entry = {
      b, phase: 'running', child: undefined, restarts: 0, policy: new RestartPolicy(), image: undefined,
      writable: true, file: undefined, settings, message: undefined, restartTimer: undefined,
    };
    this.devices.set(b.path, d);
    let file: Image;
    try {
      d.image = imagePathFromParams(params);
      d.writable = !readOnlyFromMode(mode);
      const opts = { readOnly: !d.writable, direct: settings.direct, roots: settings.imageRoots };
      file = await Image.openAsync(d.image, opts);
    } catch (e) {
      await this.refuse(d, 'failed', openFailure(e));
      return;
    }
    if (this.devices.get(b.path) !== d || this.stopping) {
      // Removed (or the worker stopping) while the open was in progress.
      closeInBackground(file);
      return;
    }
    const other = this.table.acquire(
      { dev: file.dev, ino: file.ino, realpath: file.realpath },
      { backend: b.path, domid: b.domid, writable: d.writable },
    );
    if (other) {
      closeInBackground(file);
      await this.refuse(d, 'refused', conflictMessage(d.image, d.writable, other));
      return;
    }
    d.file = file;
    debug('%s: opened %s (%s)', b.path, d.image, d.writable ? 'rw' : 'ro');
    // Started first (spawn returns at once) so that whoever sees `opened` also sees the process.
    this.spawnChild(d);
    await reportOpened(xs, b.path);
  }

  /** A device that will have no process: say why on the device, in the log and the status. */
  private async refuse(d: Entry, phase: 'refused' | 'failed', message: string): Promise<void> {
    d.phase = phase;
    d.message = message;
    // A refusal (the image is in use) is the administrator's choice to fix; a failure is an error.
    stderrLine(`${d.b.path}: ${phase === 'refused' ? 'refused' : 'cannot serve it'}: ${message}`,
      phase === 'refused' ? 'warning' : 'err');
    // Status file first: whoever sees the error in XenStore then finds it there too.
    this.writeStatusFile();
    await reportError(this.o.xs, d.b.path, message, phase === 'refused' ? 'busy' : 'error');
  }

  private spawnChild(d: Entry): void {
    if (this.stopping) return;
    const { command, args } = selfCommand();
    const stdio: StdioOptions = ['ignore', 'inherit', 'inherit', 'ipc'];
    const handed = d.file && d.image ? { fd: stdio.length, path: d.image, readOnly: !d.writable } : undefined;
    if (handed) stdio.push(d.file!.fd);
    const env = handedImageEnv({ ...this.o.env, AFSFILE_DEVICE_RESTARTS: String(d.restarts) }, handed);
    const { holdTimeoutS, fsyncIntervalS } = this.settings.timings;
    // Without capabilities and renew's ticket cache: the process faces a guest (device-privileges.ts).
    const run = deviceExec(command, [
      ...args, 'worker', '--device', d.b.path, ...d.settings.childArgs, `--hold-timeout=${holdTimeoutS}`, `--fsync-interval=${fsyncIntervalS}`,
    ], env);
    const child = spawn(run.command, run.args, { env: run.env, stdio });
    d.child = child;
    d.phase = 'running';
    debug('%s: child %d started', d.b.path, child.pid);
    child.on('error', (e) => stderrLine(`${d.b.path}: cannot start the device process: ${e.message}`, 'err'));
    child.once('exit', (code, signal) => this.onChildExit(d, child, code, signal));
    this.writeStatusFile();
  }

  /** The device has no process and will get none: its image is free for others. */
  private letGo(d: Entry): void {
    this.table.release(d.b.path);
    if (d.file) closeInBackground(d.file);
    d.file = undefined;
  }

  private onChildExit(d: Entry, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (d.child !== child) return;
    d.child = undefined;
    if (this.stopping) return;
    if (code === 0) {
      debug('%s: child finished', d.b.path);
      d.phase = 'closed';
      this.letGo(d);
      this.writeStatusFile();
      // If the dir is gone the next examine forgets the device; if it is still there (Closed,
      // waiting for libxl to remove it) the entry stays so it is not claimed again.
      this.examine(d.b, performance.now());
      return;
    }
    const how = signal ? `signal ${signal}` : `exit status ${code}`;
    if (code === EXIT_PERMANENT) {
      // It reported why on the device (afsfile-error); a restart would fail the same way.
      d.phase = 'failed';
      d.message = 'the device process cannot run here (see afsfile-error)';
      this.letGo(d);
      this.writeStatusFile();
      this.examine(d.b, performance.now());
      return;
    }
    const delay = d.policy.crashed();
    if (delay === undefined) {
      d.phase = 'failed';
      d.message = `the device process crashed ${d.policy.maxCrashes + 1} times within ${d.policy.windowMs / 1000} s (last: ${how}); see the worker's log`;
      stderrLine(`${d.b.path}: giving up: ${d.message}`, 'err');
      this.letGo(d);
      void reportError(this.o.xs, d.b.path, d.message).catch(() => undefined);
      this.writeStatusFile();
      return;
    }
    d.restarts++;
    d.phase = 'restarting';
    stderrLine(`${d.b.path}: device process ${child.pid} ended with ${how}; restarting in ${delay} ms (restart ${d.restarts})`,
      'warning');
    d.restartTimer = setTimeout(() => {
      d.restartTimer = undefined;
      if (this.devices.get(d.b.path) === d && !this.stopping) this.spawnChild(d);
    }, delay);
    this.writeStatusFile();
  }

  private forget(d: Entry, why: string): void {
    debug('%s: forgetting: %s', d.b.path, why);
    this.devices.delete(d.b.path);
    this.letGo(d);
    clearTimeout(d.restartTimer);
    // The child sees the dir go and exits by itself; the signal covers a stuck one.
    const c = d.child;
    if (c) setTimeout(() => { if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM'); }, 2000).unref();
    removeStatus(this.o.runDir, statusName(d.b));
    this.writeStatusFile();
  }

  /** A domain died or was destroyed: release the devices whose guest is gone. */
  private async onReleaseDomain(): Promise<void> {
    for (const d of [...this.devices.values()]) {
      const home = await this.o.xs.tryRead(`/local/domain/${d.b.domid}`).catch(() => '');
      if (home !== undefined) continue;
      stderrLine(`${d.b.path}: domain ${d.b.domid} is gone; releasing its device`);
      const c = d.child;
      this.released.add(d.b.path);
      this.forget(d, `domain ${d.b.domid} is gone`);
      c?.kill('SIGTERM');
    }
  }

  /** SIGTERM/SIGINT: children quiesce (XenStore state stays as it is) and exit; then we do. */
  async stop(timeoutMs = 15_000): Promise<void> {
    this.stopping = true;
    clearInterval(this.statusTimer);
    // Not awaited: xenstored may be the thing that is gone; closing the client drops them.
    for (const w of this.watches.splice(0)) void w.close().catch(() => undefined);
    const children = [...this.devices.values()].flatMap((d) => {
      clearTimeout(d.restartTimer);
      return d.child ? [d.child] : [];
    });
    await Promise.all(children.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve();
      const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
      c.once('exit', () => { clearTimeout(t); resolve(); });
      c.kill('SIGTERM');
    })));
    removeStatus(this.o.runDir, 'worker');
  }

  private writeStatusFile(): void {
    if (this.stopping) return;
    try {
      writeStatus(this.o.runDir, 'worker', {
        role: 'supervisor',
        started: this.started,
        selfDomid: this.o.selfDomid,
        xenstore: this.o.xs.endpoint.path,
        claimLatencyMs: summary(this.claimMs),
        devices: [...this.devices.values()].map((d) => ({
          backend: d.b.path, domid: d.b.domid, devid: d.b.devid, kind: d.b.kind,
          image: d.image, writable: d.writable, phase: d.phase, childPid: d.child?.pid,
          restarts: d.restarts, message: d.message,
        })),
      });
    } catch (e) {
      stderrLine(`cannot write the status file: ${(e as Error).message}`, 'warning');
    }
  }
}

/** Closing can wait on the file server (AFS writes back on the last close): not on the loop. */
function closeInBackground(file: Image): void {
  fs.close(file.fd, (e) => { if (e) stderrLine(`${file.path}: close: ${e.message}`, 'warning'); });
}

function summary(v: readonly number[]): { count: number; median: number; p99: number; max: number } | undefined {
  if (!v.length) return undefined;
  const s = [...v].sort((a, b) => a - b);
  const at = (f: number): number => Math.round(s[Math.min(s.length - 1, Math.floor(f * s.length))]! * 100) / 100;
  return { count: s.length, median: at(0.5), p99: at(0.99), max: at(1) };
}
