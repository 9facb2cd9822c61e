// The supervisor (DESIGN contracts, Process model and hotplug <-> worker): watches
// /local/domain/<self>/backend/{vbd,vbd3}, claims the devices whose script is block-afsfile
// (never touching any other), keeps the exclusivity table, runs one child process per device and
// restarts crashed ones, and cleans up after guests that died (@releaseDomain).
import createDebug from 'debug';
import { BLKBACK_HOLDS_VBD, kernelBlkbackMarkers } from '../xen/kernel-blkback';
import { XenbusState, parseState, stateName } from '../xen/xenbus-state';
import { isXenStoreError, type Watch } from '../xen/xenstore';
import type { XenStoreClient } from '../xen/xenstore-client';
import { BACKEND_KINDS, type BackendPath, deviceOf, kindRoot, parseBackendPath, statusName } from './backend-path';
import {
  AFSFILE_IDENTITY, type ClaimLimits, claimDevice, imagePathFromParams, readOnlyFromMode, reportError, reportOpened,
} from './device';
import type { FromDevice } from './device-link';
import { type DeviceRetune, retuneMessage } from './device-retune';
import { EXIT_PERMANENT } from './exit-codes';
import { ExclusivityTable, conflictMessage } from './exclusivity';
import { stderrLine } from './log';
import { isOurScript } from './params';
import { RestartPolicy } from './restart-policy';
import { type DeviceProc, LocalSpawner, type Spawner } from './spawner';
import { HOST_IDENTITY, identityErrorPrefix } from '../cli/identity-config';
import { type Binding, Identities, type IdentitySettings } from './identities';
import { removeStatus, writeStatus } from './status-file';
import { Rerun } from '../util/rerun';
import { migrationSources } from '../xen/migration';

const debug = createDebug('afsfile:worker');

/** What a reloaded config (SIGHUP) changes: `timings` at once, the rest for devices claimed
 * from then on (a device keeps what it advertised and how its image was opened). */
export interface SupervisorSettings {
  readonly features: ClaimLimits;
  /** Options passed on to every child (after `worker --device <path>`), but the timings. */
  readonly childArgs: readonly string[];
  readonly timings: DeviceRetune;
  /** Per-domain identities: openers start with the worker and on reload, never in an attach. */
  readonly identities: IdentitySettings;
  /** Which devices share a device process (besides sharing its identity's PAG). */
  readonly isolation: Isolation;
}

export type Isolation = 'identity' | 'domain' | 'disk';

/** The device host group of a device within its identity's spawner (spawner.ts). */
export function isolationGroup(isolation: Isolation, b: BackendPath, splits = 0): string {
  const base = isolation === 'identity' ? 'identity' : isolation === 'domain' ? `domain ${b.domid}` : `disk ${b.path}`;
  return splits > 0 ? `${base} / ${splitBits(b.path, splits)}` : base;
}

/**
 * How many times a device's host may crash with other devices in it before such crashes count
 * against its restart limit: each crash splits the group in two (by one more bit of a hash of
 * the backend path), so that repeated crashes caused by one device leave it alone in its
 * process after about log2(devices) of them, where its crashes are its own (2^8 groups: a
 * device shares its bits with another one of 200 in about half the cases).
 */
export const MAX_SPLITS = 8;

/** The low `n` bits of the FNV-1a hash of `path`, as a string of 0 and 1. */
export function splitBits(path: string, n: number): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < path.length; i++) h = Math.imul(h ^ path.charCodeAt(i), 0x01000193) >>> 0;
  return (h & ((1 << n) - 1)).toString(2).padStart(n, '0');
}

export interface SupervisorOptions extends SupervisorSettings {
  readonly xs: XenStoreClient;
  readonly selfDomid: number;
  readonly runDir: string;
  readonly env: NodeJS.ProcessEnv;
  /** Options a spare device process starts with (the platform): the rest come with its device. */
  readonly spareArgs: readonly string[];
  /** Called with the claim latency of each claimed device (ms since the supervisor saw it). */
  readonly onClaim?: (backend: string, ms: number) => void;
}

/** How long a verdict waits at most for the devices it must follow (firstReportPending). */
const FIRST_REPORT_WAIT_MS = 10_000;

type Phase = 'running' | 'restarting' | 'refused' | 'failed' | 'closed';

interface Entry {
  readonly b: BackendPath;
  phase: Phase;
  /** The domain's name when the disk was attached (xl renames domains while migrating). */
  domain: string | undefined;
  /** The identity the device is served with, chosen at attach and kept ('host': renew's). */
  identity: string;
  child: DeviceProc | undefined;
  restarts: number;
  readonly policy: RestartPolicy;
  image: string | undefined;
  writable: boolean;
  /** A device process of this device has opened its image and was let use it (afsfile-status
   * was reported opened): a later failure to open is a crash, restarted, not a refusal. */
  opened: boolean;
  /** The settings the device was claimed with (a restarted process gets the same). */
  readonly settings: SupervisorSettings;
  message: string | undefined;
  restartTimer: NodeJS.Timeout | undefined;
  /** Crashes of a device host it was in with others (splitGroup): each halves its group. */
  splits?: number;
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
  /** The host identity's device processes are this process's children. */
  private readonly spawner: LocalSpawner;
  private readonly identities: Identities;
  /** Devices whose process has not yet said what it opened: verdicts may wait for them. */
  private readonly firstReport = new Map<string, { seq: number; image: string | undefined; adopted: boolean;
    until: number }>();
  private readonly reportWaiters: Array<() => void> = [];
  private admitted = 0;

  constructor(private readonly o: SupervisorOptions) {
    this.settings = {
      features: o.features, childArgs: o.childArgs, timings: o.timings, identities: o.identities, isolation: o.isolation,
    };
    this.spawner = new LocalSpawner(o.env, o.spareArgs, 'worker', () => this.writeStatusFile());
    this.identities = new Identities(o.identities, {
      env: o.env, runDir: o.runDir, spareArgs: o.spareArgs, onChange: () => this.writeStatusFile(),
      inUse: (label) => [...this.devices.values()].filter((d) => d.identity === label &&
        (d.phase === 'running' || d.phase === 'restarting')).length,
    });
  }

  /** SIGHUP: the new settings; running device processes get the new timings at once. */
  reconfigure(s: SupervisorSettings): void {
    this.settings = s;
    for (const l of this.identities.reconfigure(s.identities)) stderrLine(`SIGHUP: ${l}`);
    this.writeStatusFile();
    for (const d of this.devices.values()) {
      d.child?.send(retuneMessage(s.timings));
    }
  }

  async start(): Promise<void> {
    this.spawner.begin();
    this.identities.begin();
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
    const state = parseState(stateText);
    if (!known && b.kind === 'vbd' && (this.foreign.has(b.path) || state === XenbusState.Initialising)
      && kernelBlkbackMarkers(this.o.env.AFSFILE_CHECK_ROOT ?? '/').length) {
      // Kernel blkback took this device too: claiming it would only fight over the ring. The
      // hotplug script passes the reason on to xl; the device stays blkback's.
      if (!this.foreign.has(b.path) && online?.trim() === '1') {
        this.foreign.add(b.path);
        stderrLine(`${b.path}: not served: ${BLKBACK_HOLDS_VBD}`, 'err');
        await reportError(xs, b.path, BLKBACK_HOLDS_VBD);
      }
      return;
    }
    this.foreign.delete(b.path);
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
            b, phase: 'refused', domain: undefined, identity: HOST_IDENTITY, child: undefined, restarts: 0,
            policy: new RestartPolicy(), image: undefined, writable: false, opened: false, settings: this.settings,
            message: await xs.tryRead(`${b.path}/afsfile-error`), restartTimer: undefined,
          });
          this.writeStatusFile();
          if (online?.trim() === '0' && state === XenbusState.Closing) await xs.write(`${b.path}/state`, String(XenbusState.Closed));
        } else {
          await this.admit(b, this.settings, true);
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
   * Starts the device's process (a spare already running, normally), which opens the image
   * itself and reports what it opened (onMessage); nothing here waits on the image's file
   * system. The hotplug script's wait is the spare's open and our verdict, never a process start.
   */
  private async admit(b: BackendPath, settings: SupervisorSettings, adopted = false): Promise<void> {
    const xs = this.o.xs;
    const [params, mode, domain, was] = await Promise.all([
      xs.tryRead(`${b.path}/params`), xs.tryRead(`${b.path}/mode`), xs.tryRead(`/local/domain/${b.domid}/name`),
      adopted ? xs.tryRead(`${b.path}/${AFSFILE_IDENTITY}`) : undefined,
    ]);
    const binding = adopted ? this.adoptedBinding(b, domain, was) : this.identities.bind(domain);
    const d: Entry = {
      b, phase: 'running', domain, identity: 'label' in binding ? binding.label : HOST_IDENTITY, child: undefined,
      restarts: 0, policy: new RestartPolicy(), image: undefined,
      // Adopted: served before, so a failed open in its new process is a crash (restarted).
      writable: false, opened: adopted, settings, message: undefined, restartTimer: undefined,
    };
    try {
      d.writable = !readOnlyFromMode(mode);
      d.image = imagePathFromParams(params);
    } catch {
      // The device process says why (afsfile-error); the status shows no image meanwhile.
    }
    if (this.stopping) return;
    this.devices.set(b.path, d);
    if ('refused' in binding) {
      await this.refuse(d, 'failed', binding.refused);
      return;
    }
    this.awaitingReport(b.path, d.image, adopted);
    this.spawnChild(d);
  }

  /**
   * A device adopted after a worker restart keeps the identity it was served with (afsfile-identity
   * in its backend dir, written with its first `opened`), as long as that identity is still configured: a device's identity is
   * pinned for its life, even if the domain was renamed or the bindings changed meanwhile.
   */
  private adoptedBinding(b: BackendPath, domain: string | undefined, was: string | undefined): Binding {
    const now = this.identities.bind(domain);
    if (was === undefined || ('label' in now && now.label === was)) return now;
    if (was === HOST_IDENTITY || this.identities.opener(was)) {
      stderrLine(`${b.path}: adopted with identity ${was}, which served it before (the bindings say ` +
        `${'label' in now ? now.label : 'none'} for domain ${domain ?? b.domid}: its next disks get that)`);
      return { label: was };
    }
    stderrLine(`${b.path}: served with identity ${was} before, which is not configured any more: ` +
      `adopted with ${'label' in now ? `identity ${now.label}` : 'no identity'}`, 'warning');
    return now;
  }

  /**
   * Verdicts follow the order of attaches, not of the opens' speed: a device's verdict waits
   * (bounded) while one attached before it with the same image has not reported yet, and while
   * a device adopted from an earlier supervisor has not (it holds its image already, but the
   * table learns of it only from its new process). Devices of other images never wait for each
   * other, so an open that hangs delays nobody else.
   */
  private awaitingReport(backend: string, image: string | undefined, adopted: boolean): void {
    this.firstReport.set(backend, { seq: this.admitted++, image, adopted, until: Date.now() + FIRST_REPORT_WAIT_MS });
  }

  private reported(backend: string): void {
    if (!this.firstReport.delete(backend)) return;
    for (const w of this.reportWaiters.splice(0)) w();
  }

  private async followEarlier(d: Entry): Promise<void> {
    const me = this.firstReport.get(d.b.path);
    this.reported(d.b.path);
    const blocker = (): number | undefined => {
      for (const [b, e] of this.firstReport) {
        if (b === d.b.path || Date.now() >= e.until) continue;
        if (e.adopted || (me && e.seq < me.seq && e.image !== undefined && e.image === d.image)) return e.until;
      }
      return undefined;
    };
    for (let until = blocker(); until !== undefined; until = blocker()) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, until - Date.now());
        this.reportWaiters.push(() => { clearTimeout(t); r(); });
      });
    }
  }

  /** What a device process says about its image: the verdict of the exclusivity table. */
  private async onMessage(d: Entry, child: DeviceProc, m: FromDevice): Promise<void> {
    if (d.child !== child || this.devices.get(d.b.path) !== d || this.stopping) return;
    if (m.t === 'open-failed') {
      this.reported(d.b.path);
      if (d.opened) {
        // Served before (a restart): its exit is a crash, restarted with back-off.
        stderrLine(`${d.b.path}: the restarted device process cannot open the image: ${m.message}`);
        return;
      }
      d.image = m.image ?? d.image;
      if (d.identity === HOST_IDENTITY) {
        await this.refuse(d, 'failed', m.message);
        return;
      }
      // Guests can read the message: the identity's label, never its principal (the log has it).
      const who = identityErrorPrefix(d.domain ?? String(d.b.domid), d.identity);
      stderrLine(`${d.b.path}: ${who} (principal ${this.identities.principal(d.identity) ?? 'unknown'}) ` +
        `cannot open ${d.image ?? 'its image'}`);
      await this.refuse(d, 'failed', `${who}: ${m.message}`);
      return;
    }
    if (m.t === 'locked') {
      await this.onLocked(d, m);
      return;
    }
    if (m.t !== 'opened') return;
    await this.followEarlier(d);
    if (d.child !== child || this.devices.get(d.b.path) !== d || this.stopping) return;
    const source = m.incoming ? await migrationSources(this.o.xs, d.b.domid, d.domain) : undefined;
    const other = this.table.acquire(
      { dev: m.dev, ino: m.ino, realpath: m.realpath },
      { backend: d.b.path, domid: d.b.domid, writable: m.writable },
      (h) => source?.has(h.domid) === true,
    );
    d.image = m.image;
    d.writable = m.writable;
    if (other) {
      const message = conflictMessage(m.image, m.writable, other);
      await this.refuse(d, 'refused', message);
      child.send({ t: 'verdict', ok: false, message });
      return;
    }
    debug('%s: opened %s (%s) by process %d', d.b.path, m.image, m.writable ? 'rw' : 'ro', child.pid);
    // The device process now takes the image lock (src/image/lock.ts) and says how it went.
    child.send({ t: 'verdict', ok: true });
  }

  /** The image lock, after a good verdict: only now is the attach reported opened. */
  private async onLocked(d: Entry, m: Extract<FromDevice, { t: 'locked' }>): Promise<void> {
    if (!m.ok) {
      this.table.release(d.b.path);
      await this.refuse(d, m.busy ? 'refused' : 'failed', m.message);
      return;
    }
    if (!d.opened) {
      d.opened = true;
      await reportOpened(this.o.xs, d.b.path, d.identity);
    }
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
    const { holdTimeoutS, fsyncIntervalS } = this.settings.timings;
    const args = [...d.settings.childArgs, `--hold-timeout=${holdTimeoutS}`, `--fsync-interval=${fsyncIntervalS}`];
    const spawner: Spawner | undefined =
      d.identity === HOST_IDENTITY ? this.spawner : this.identities.opener(d.identity);
    if (!spawner) {
      void this.refuse(d, 'failed', `identity ${d.identity} is not configured any more`).catch(() => undefined);
      return;
    }
    const child: DeviceProc = spawner.start(d.b.path, args, d.restarts, {
      message: (m) => void this.onMessage(d, child, m).catch((e: Error) => stderrLine(`${d.b.path}: ${e.message}`)),
      exit: (code, signal, shared) => this.onChildExit(d, child, code, signal, shared === true),
    }, isolationGroup(d.settings.isolation, d.b, d.splits));
    d.child = child;
    d.phase = 'running';
    debug('%s: child %d started', d.b.path, child.pid);
    this.writeStatusFile();
  }

  /** The device has no process and will get none: its image is free for others. */
  private letGo(d: Entry): void {
    this.reported(d.b.path);
    this.table.release(d.b.path);
    if (d.identity !== HOST_IDENTITY) setImmediate(() => this.identities.released(d.identity));
  }

  private onChildExit(
    d: Entry, child: DeviceProc, code: number | null, signal: NodeJS.Signals | null, shared = false,
  ): void {
    if (d.child !== child) return;
    d.child = undefined;
    if (this.stopping) return;
    if (d.phase === 'refused' || d.phase === 'failed') {
      // Refused (busy) or its image could not be opened: reported on the device; no restart.
      this.letGo(d);
      this.writeStatusFile();
      this.examine(d.b, performance.now());
      return;
    }
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
    // A device host that crashed with others in it: no one device's doing yet, so it does not
    // count against this device's limit; its group is split instead (MAX_SPLITS).
    const split = shared && (d.splits ?? 0) < MAX_SPLITS;
    if (split) d.splits = (d.splits ?? 0) + 1;
    const delay = split ? d.policy.firstDelayMs : d.policy.crashed();
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
    const where = split ? `; its process served other disks too: restarting in a smaller group (split ${d.splits})` : '';
    stderrLine(`${d.b.path}: device process ${child.pid} ended with ${how}; restarting in ${delay} ms (restart ` +
      `${d.restarts}${where})`, 'warning');
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
    if (c) setTimeout(() => { if (c.running()) c.kill('SIGTERM'); }, 2000).unref();
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
    this.spawner.close();
    clearInterval(this.statusTimer);
    // Not awaited: xenstored may be the thing that is gone; closing the client drops them.
    for (const w of this.watches.splice(0)) void w.close().catch(() => undefined);
    const children = [...this.devices.values()].flatMap((d) => {
      clearTimeout(d.restartTimer);
      return d.child ? [d.child] : [];
    });
    await Promise.all(children.map(async (c) => {
      if (!c.running()) return;
      const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
      c.kill('SIGTERM');
      await c.exited;
      clearTimeout(t);
    }));
    // Device hosts exit once their last device has ended (a moment after its `ended`).
    await Promise.race([this.spawner.allEnded(), new Promise((r) => setTimeout(r, 5000).unref())]);
    await this.identities.stop();
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
        // The device process started ahead of need, which serves the next attach.
        spare: this.spawner.spareState(),
        // Processes serving several devices (isolation identity or domain): the host identity's.
        hosts: this.spawner.hostState(),
        identities: this.identities.status(),
        devices: [...this.devices.values()].map((d) => ({
          backend: d.b.path, domid: d.b.domid, devid: d.b.devid, kind: d.b.kind, domain: d.domain, identity: d.identity,
          image: d.image, writable: d.writable, phase: d.phase, childPid: d.child?.pid,
          restarts: d.restarts, message: d.message,
        })),
      });
    } catch (e) {
      stderrLine(`cannot write the status file: ${(e as Error).message}`, 'warning');
    }
  }
}

function summary(v: readonly number[]): { count: number; median: number; p99: number; max: number } | undefined {
  if (!v.length) return undefined;
  const s = [...v].sort((a, b) => a - b);
  const at = (f: number): number => Math.round(s[Math.min(s.length - 1, Math.floor(f * s.length))]! * 100) / 100;
  return { count: s.length, median: at(0.5), p99: at(0.99), max: at(1) };
}
