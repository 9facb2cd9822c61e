// One vbd, from InitWait to Closed (and back for a reconnect), driven by XenStore watches
// (blkif.h's state machine, Linux xen-blkback/xenbus.c, libxl_device.c removal; DESIGN.md
// "Hotplug <-> worker"). Used in-process by the demo and by the worker's per-device child.
//
//   frontend Initialised/Connected + hotplug-status=connected + image open → connect (one
//     transaction: sectors, sector-size, info, features, state=4)
//   frontend Closing → Closing;  frontend Closed (or gone) → drain, fsync, unmap, unbind, Closed
//   frontend Initialising while we are Closed and online → InitWait (reconnect)
//   online=0 + state=5 (libxl removal) → the same as Closed, within closeDeadlineMs even if
//     fsync keeps failing; then retry fsync in the background up to hold-timeout; `closed`
//     resolves.
// Every XenStore value is checked before use; nothing a guest writes can crash this.
import createDebug from 'debug';
import { SECTOR_SIZE, VDISK_CDROM, VDISK_READONLY, VDISK_REMOVABLE } from '../../blkif/constants';
import type { DeviceLimits } from '../../blkif/validate';
import type { BlockFile } from '../../engine/block-file';
import { Engine, type EngineOptions } from '../../engine/engine';
import type { EngineStats } from '../../engine/stats';
import { Image, ImageError, type IoPath } from '../../image/image';
import type { Platform } from '../../xen/platform';
import { XenbusState, parseState, stateName } from '../../xen/xenbus-state';
import type { Watch, XenStore } from '../../xen/xenstore';
import { Rerun } from '../../util/rerun';
import { withTimeout } from '../../util/timeout';
import { advertisedLimits, claimLimits, type ClaimLimits } from './claim';
import { Connection } from './connection';
import { FrontendError, readFrontend } from './frontend';
import { DeviceConfigError, imagePathFromParams, parseU32, readOnlyFromMode } from './params';
import { AFSFILE_ERROR, AFSFILE_STATUS, reportError, reportOpened } from './status';
import { LogThrottle } from './log-throttle';

const log = createDebug('afsfile:device');

/** An opened image as the device needs it. */
export interface DeviceImage extends BlockFile {
  readonly path: string;
  /** How its I/O reaches the kernel (Image sets it; test wrappers may not). */
  readonly ioPath?: IoPath;
  /** False: reopen() keeps the open file (a local file system gains nothing from a new one). */
  readonly reopenNeeded?: boolean;
  /** Closes in the background (Image: each descriptor on a thread of its own); done gets the
   * first error. */
  close(done?: (err: NodeJS.ErrnoException | null) => void): void;
}

export interface DeviceConfig {
  /** What claimDevice advertised (defaults as claimDevice). */
  limits?: Partial<ClaimLimits>;
  engine?: EngineOptions;
  /** O_DIRECT for local images. */
  direct?: boolean;
  /** Removal must reach Closed within this (libxl waits 10 s). Default 8000 ms. */
  closeDeadlineMs?: number;
  /** Opens the image (tests substitute failing files). Default Image.open. */
  openImage?(path: string, readOnly: boolean): DeviceImage;
  /** Lines an administrator must see; default stderr. */
  warn?(message: string): void;
  /** The platform serves this device alone (a device process): restrict its event channels
   * to the frontend's domain. */
  restrictEventChannels?: boolean;
  /** After each look at XenStore: the device's state may have changed (status file). */
  onChange?(): void;
  /** Whether the device may connect now: 'go'; 'wait' (the gate calls poke when that may have
   * changed: a migration destination waits for the image lock); or why it never may. */
  connectGate?(poke: () => void): 'go' | 'wait' | { readonly error: string };
  /** Lines a frontend causes (bad values, a broken ring): at most this many per interval,
   * then one "suppressed N" line (defaults GUEST_LOG_BURST per GUEST_LOG_INTERVAL_MS). */
  guestLog?: { burst: number; intervalMs: number };
}

/** A guest cycling through bad states gets its first lines logged, then a count per minute. */
export const GUEST_LOG_BURST = 5;
export const GUEST_LOG_INTERVAL_MS = 60_000;

export interface DeviceStats {
  backend: string;
  frontend: string | undefined;
  image: string | undefined;
  readOnly: boolean;
  state: string;
  connected: boolean;
  queues: number;
  connects: number;
  /** Event channel wakeups of the current connection, and those that found no request. */
  events: number;
  spuriousEvents: number;
  /** Times a port was left masked for a back-off delay (a storm; never for a working guest). */
  backoffs: number;
  engine: EngineStats | undefined;
  /** "io_uring", or "thread pool (why io_uring was refused)". */
  ioPath: string | undefined;
}

function describeIoPath(p: IoPath | undefined): string | undefined {
  if (!p) return undefined;
  return p.kind === 'io_uring' ? 'io_uring' : `thread pool${p.why ? ` (${p.why})` : ''}`;
}

export const DEFAULT_CLOSE_DEADLINE_MS = 8000;

/** Why an image cannot be served, for afsfile-error: our own checks speak for themselves. */
export function openFailure(err: unknown): string {
  return err instanceof ImageError || err instanceof DeviceConfigError ? err.message : `cannot open the image: ${(err as Error).message}`;
}

export class Device {
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  /** The config's limits, then (start) what the backend directory advertised. */
  private limits: ClaimLimits;
  private readonly warnFn: (m: string) => void;
  private readonly guestLog: LogThrottle;
  private image: DeviceImage | undefined;
  private engine: Engine | undefined;
  private conn: Connection | undefined;
  private frontend: string | undefined;
  private frontendId = -1;
  private readOnly = false;
  private discard = false;
  private imageOk = false;
  /** The state we last wrote (or found). */
  private state: number = XenbusState.Unknown;
  private readonly watches: Watch[] = [];
  private finished = false;
  private quiescing = false;
  private connects = 0;
  private feWatch: Watch | undefined;
  /** The reconciliation in progress, if any. */
  /** Serialises reconciliation: watch events only say "look again". */
  private readonly reconciler = new Rerun(
    async () => {
      try {
        await this.reconcile();
      } catch (err) {
        this.warn(`${this.backendPath}: ${(err as Error).message}`);
      }
      this.config.onChange?.();
    },
    { stop: () => this.finished || this.quiescing },
  );

  constructor(
    private readonly xs: XenStore,
    private readonly platform: Platform,
    readonly backendPath: string,
    private readonly config: DeviceConfig = {},
  ) {
    this.limits = claimLimits(config.limits);
    this.warnFn = config.warn ?? ((m) => process.stderr.write(`afsfile: ${m}\n`));
    this.guestLog = new LogThrottle({
      burst: config.guestLog?.burst ?? GUEST_LOG_BURST,
      intervalMs: config.guestLog?.intervalMs ?? GUEST_LOG_INTERVAL_MS,
      emit: (m) => this.warn(m),
      subject: `${backendPath}: frontend`,
    });
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  /** Opens the image, reports afsfile-status, and starts following XenStore. */
  async start(): Promise<void> {
    const be = this.backendPath;
    const [frontend, frontendId, params, mode, discardEnable] = await Promise.all([
      this.xs.tryRead(`${be}/frontend`),
      this.xs.tryRead(`${be}/frontend-id`),
      this.xs.tryRead(`${be}/params`),
      this.xs.tryRead(`${be}/mode`),
      this.xs.tryRead(`${be}/discard-enable`),
    ]);
    this.limits = await advertisedLimits(this.xs, be, this.limits);
    const feId = parseU32(frontendId);
    if (feId !== undefined && frontend !== undefined && frontend.trim().startsWith(`/local/domain/${feId}/`)) {
      this.frontend = frontend.trim();
      this.frontendId = feId;
      if (this.config.restrictEventChannels) this.restrictEventChannels(feId);
    }
    try {
      if (this.frontend === undefined) throw new DeviceConfigError(`backend keys frontend/frontend-id are missing or inconsistent (${JSON.stringify(frontend ?? null)}, ${JSON.stringify(frontendId ?? null)})`);
      const path = imagePathFromParams(params);
      this.readOnly = readOnlyFromMode(mode);
      this.image = this.config.openImage
        ? this.config.openImage(path, this.readOnly)
        : Image.open(path, { readOnly: this.readOnly, direct: this.config.direct });
      // feature-discard only where holes can be punched (never zero-fill) and libxl allows it.
      this.discard = this.image.canDiscard && !this.readOnly && !this.image.readOnly && discardEnable?.trim() !== '0';
      this.engine = new Engine(this.image, this.platform.grants, this.deviceLimits(this.image), {
        ...this.config.engine,
        // O_DIRECT: kept copies would not be aligned for writing them again (durability.ts).
        // Nor may reads go straight into the guest's mapped pages (persistent grants).
        ...(this.config.direct ? { keepBytes: 0, foreignIo: false } : {}),
        warn: (m) => this.warn(m),
      });
      this.imageOk = true;
      await reportOpened(this.xs, be);
      log('%s: opened %s (%s)', be, path, this.readOnly ? 'ro' : 'rw');
    } catch (err) {
      const msg = openFailure(err);
      this.warn(`${be}: ${msg}`);
      await this.reportError(msg);
    }
    for (const path of [`${be}/state`, `${be}/online`, `${be}/hotplug-status`]) this.watches.push(await this.xs.watch(path, () => this.poke()));
    if (this.frontend) this.feWatch = await this.xs.watch(`${this.frontend}/state`, () => this.poke());
  }

  /**
   * SIGTERM: stop consuming, finish what is in flight, fsync, and let go of rings and ports,
   * leaving XenStore Connected so the next worker re-attaches.
   */
  async quiesce(): Promise<void> {
    this.quiescing = true;
    await this.stopWatches();
    // Let a connect or disconnect in progress finish first (bounded: it has its own deadlines).
    await withTimeout(this.reconciler.idle(), this.closeDeadline(), () => undefined);
    if (this.engine) {
      await withTimeout(this.engine.drain().catch(() => undefined), this.closeDeadline(), () => undefined);
      // Bounded even when one fsync call hangs (a dead file server): the process is exiting.
      const flushed = await withTimeout(
        this.engine.flush(this.closeDeadline()).then(
          () => true,
          (err: NodeJS.ErrnoException) => (this.warn(`${this.backendPath}: fsync at quiesce failed: ${err.code ?? err.message}`), true),
        ),
        this.closeDeadline(),
        () => false,
      );
      if (!flushed) this.warn(`${this.backendPath}: fsync at quiesce did not finish within ${this.closeDeadline()} ms`);
    }
    this.conn?.close();
    this.conn = undefined;
    this.finish();
  }

  /**
   * New tokens (renew.json's renewals grew): the image is opened again so that kAFS writes back
   * with the new key. While connected the engine does it, holding other I/O, and writes what it
   * kept since the last good fsync again through the new open file (Engine.refresh); cb gets
   * the outcome. False: nothing to reopen (no image, or not on AFS).
   */
  reopenImage(cb: (err: NodeJS.ErrnoException | null) => void): boolean {
    if (!this.image?.reopen || this.image.reopenNeeded === false) return false;
    if (this.engine) this.engine.refresh(cb);
    else this.image.reopen(cb);
    return true;
  }

  /** Timings from a reloaded config (SIGHUP), applied to the engine at once. */
  retune(t: { holdTimeoutMs: number; fsyncIntervalMs: number }): void {
    this.engine?.retune(t);
  }

  stats(): DeviceStats {
    return {
      backend: this.backendPath,
      frontend: this.frontend,
      image: this.image?.path,
      readOnly: this.readOnly,
      state: stateName(this.state),
      connected: this.conn !== undefined,
      queues: this.conn?.queues ?? 0,
      connects: this.connects,
      events: this.conn?.events ?? 0,
      spuriousEvents: this.conn?.spuriousEvents ?? 0,
      backoffs: this.conn?.backoffs ?? 0,
      engine: this.engine?.stats(),
      ioPath: describeIoPath(this.image?.ioPath),
    };
  }

  // ------------------------------------------------------------------------------------------

  /**
   * On Linux, this process's event channel fd may from now on bind only to the frontend's
   * domain (IOCTL_EVTCHN_RESTRICT_DOMID, drivers/xen/evtchn.c: no unbound ports, no VIRQs, no
   * other domain), so a compromised device process cannot reach another guest's channels.
   */
  private restrictEventChannels(domid: number): void {
    const ev = this.platform.evtchn as { restrictDomid?(domid: number): void };
    if (typeof ev.restrictDomid !== 'function') return;
    try {
      ev.restrictDomid(domid);
    } catch (err) {
      this.warn(`${this.backendPath}: cannot restrict event channels to domain ${domid}: ${(err as Error).message}`);
    }
  }

  private deviceLimits(img: BlockFile): DeviceLimits {
    return {
      sectors: BigInt(Math.floor(img.size / SECTOR_SIZE)),
      readOnly: this.readOnly || img.readOnly,
      maxIndirectSegments: this.limits.maxIndirectSegments,
      discard: this.discard,
      flush: true,
      barrier: true,
    };
  }

  private poke(): void {
    if (!this.finished && !this.quiescing) this.reconciler.request();
  }

  private async reconcile(): Promise<void> {
    const be = this.backendPath;
    const [stateText, onlineText, hotplug] = await Promise.all([
      this.xs.tryRead(`${be}/state`),
      this.xs.tryRead(`${be}/online`),
      this.xs.tryRead(`${be}/hotplug-status`),
    ]);
    if (stateText === undefined) {
      // The backend directory is gone (libxl destroyed it, or a forced remove).
      log('%s: backend removed', be);
      await this.disconnect(false);
      await this.finishRemoval();
      return;
    }
    const beState = parseState(stateText) ?? XenbusState.Unknown;
    this.state = beState;
    const online = parseU32(onlineText) === 1;
    const feText = this.frontend ? await this.xs.tryRead(`${this.frontend}/state`) : undefined;
    const feState = feText === undefined ? undefined : parseState(feText) ?? XenbusState.Unknown;
    log('%s: backend %s, frontend %s, online %s, hotplug %s', be, stateName(beState), feState === undefined ? 'gone' : stateName(feState), online, hotplug);

    if (!online && (beState === XenbusState.Closing || beState === XenbusState.Closed || feState === undefined || feState === XenbusState.Closed)) {
      await this.disconnect(true);
      await this.writeState(XenbusState.Closed);
      await this.finishRemoval();
      return;
    }

    switch (feState) {
      case XenbusState.Initialised:
      case XenbusState.Connected:
        if (this.conn === undefined && this.imageOk && hotplug?.trim() === 'connected' && online && beState !== XenbusState.Closing && beState !== XenbusState.Closed) {
          const gate = this.config.connectGate?.(() => this.poke()) ?? 'go';
          if (gate === 'wait') return;
          if (gate !== 'go') {
            this.warn(`${be}: ${gate.error}`);
            await this.reportError(gate.error);
            await this.writeState(XenbusState.Closing);
            return;
          }
          await this.connect();
        }
        return;
      case XenbusState.Closing:
        if (beState !== XenbusState.Closed) await this.writeState(XenbusState.Closing);
        return;
      case XenbusState.Closed:
      case XenbusState.Unknown:
      case undefined:
        if (this.conn !== undefined || beState === XenbusState.Connected || beState === XenbusState.Closing) {
          await this.disconnect(true);
          await this.writeState(XenbusState.Closed);
        }
        return;
      case XenbusState.Initialising:
        if (beState === XenbusState.Closed && online) {
          log('%s: frontend re-initialising: back to InitWait', be);
          await this.writeState(XenbusState.InitWait);
        }
        return;
      default:
        return;
    }
  }

  private async connect(): Promise<void> {
    const be = this.backendPath;
    const fe = this.frontend!;
    const engine = this.engine!;
    const img = this.image!;
    let conn: Connection | undefined;
    try {
      const params = await readFrontend(this.xs, fe, this.limits);
      const discard = this.discard;
      const deviceType = await this.xs.tryRead(`${be}/device-type`);
      // Persistent grants (blkif.h feature-persistent): offered at connect as Linux blkback does
      // (drivers/block/xen-blkback/xenbus.c). A frontend already Connected (a new worker adopts
      // the device) chose its mode from what the backend said then: keep that, whatever this
      // worker's setting, or grants it ends after each request would still be mapped.
      const [beStateText, beOffered] = await Promise.all([
        this.xs.tryRead(`${be}/state`), this.xs.tryRead(`${be}/feature-persistent`),
      ]);
      const adopting = parseState(beStateText ?? '') === XenbusState.Connected;
      const offer = adopting ? beOffered?.trim() === '1' : engine.offersPersistentGrants;
      const persistent = offer && params.persistent && engine.offersPersistentGrants;
      engine.resume();
      conn = await Connection.open(
        this.platform, engine, this.frontendId, params, (reason) => this.onBroken(reason), persistent,
      );
      const sectors = Math.floor(img.size / SECTOR_SIZE);
      let info = this.readOnly ? VDISK_READONLY : 0;
      if (deviceType?.trim() === 'cdrom') info |= VDISK_CDROM | VDISK_REMOVABLE;
      const wrote = await this.xs.transaction(async (tx) => {
        if ((await tx.tryRead(`${be}/state`)) === undefined) return false;
        await tx.write(`${be}/sectors`, String(sectors));
        await tx.write(`${be}/sector-size`, String(SECTOR_SIZE));
        await tx.write(`${be}/info`, String(info));
        await tx.write(`${be}/feature-flush-cache`, '1');
        await tx.write(`${be}/feature-barrier`, '1');
        if (offer) await tx.write(`${be}/feature-persistent`, '1');
        else await tx.rm(`${be}/feature-persistent`);
        if (discard) {
          await tx.write(`${be}/feature-discard`, '1');
          await tx.write(`${be}/discard-granularity`, '4096');
          await tx.write(`${be}/discard-alignment`, '0');
        }
        await tx.write(`${be}/state`, String(XenbusState.Connected));
        // A previous connect may have failed: the device is fine now.
        await tx.write(`${be}/${AFSFILE_STATUS}`, 'opened');
        await tx.rm(`${be}/${AFSFILE_ERROR}`);
        return true;
      });
      if (!wrote || this.finished || this.quiescing) {
        conn.close();
        return;
      }
      this.conn = conn;
      this.state = XenbusState.Connected;
      this.connects++;
      log('%s: connected (%d queue(s), order %d, %s%s)', be, params.queues.length, params.ringPageOrder,
        params.abi.name, persistent ? ', persistent grants' : '');
    } catch (err) {
      conn?.close();
      const msg = err instanceof FrontendError ? `frontend ${fe}: ${err.message}` : `connect failed: ${(err as Error).message}`;
      // The frontend's values caused it: it can do so again at will (throttled).
      this.guestLog.line(`${be}: ${msg}`);
      await this.reportError(msg);
      await this.writeState(XenbusState.Closing);
    }
  }

  private onBroken(reason: string): void {
    const msg = `frontend ${this.frontend} broke the ring (${reason}); disconnected`;
    this.guestLog.line(`${this.backendPath}: ${msg}`);
    this.conn?.close();
    this.conn = undefined;
    void this.reportError(msg)
      .then(() => this.writeState(XenbusState.Closing))
      .catch((err: Error) => this.warn(`${this.backendPath}: ${err.message}`));
  }

  /**
   * Drains in-flight I/O, fsyncs and lets go of the rings, within the close deadline. With
   * `report`, a failed fsync is logged loudly (the caller still writes Closed).
   */
  private async disconnect(report: boolean): Promise<void> {
    const engine = this.engine;
    if (!engine) return;
    const deadline = Date.now() + this.closeDeadline();
    if (this.conn) {
      const drained = await withTimeout(engine.drain().then(() => true, () => true), this.closeDeadline(), () => false);
      if (!drained) this.warn(`${this.backendPath}: in-flight I/O did not finish within ${this.closeDeadline()} ms; disconnecting anyway (it completes in the background)`);
      this.conn.close();
      this.conn = undefined;
    }
    if (!engine.dirty) return;
    // A hung file server can block one fsync call for minutes: bound the wait itself too.
    const left = Math.max(0, deadline - Date.now());
    let failure = 'it did not finish in time';
    const ok = await withTimeout(
      engine.flush(left).then(
        () => true,
        (err: NodeJS.ErrnoException) => ((failure = err.code ?? err.message), false),
      ),
      left,
      () => false,
    );
    if (!ok && report) this.warn(`${this.backendPath}: fsync before Closed failed (${failure}); writing Closed anyway and retrying in the background`);
  }

  /** After Closed on removal: keep the fd while fsync is still failing, then close. */
  private async finishRemoval(): Promise<void> {
    if (this.finished) return;
    await this.stopWatches();
    const engine = this.engine;
    if (engine?.dirty) {
      try {
        await engine.flush();
      } catch (err) {
        this.warn(`${this.backendPath}: giving up on fsync after hold-timeout: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; the last writes may be lost`);
      }
    }
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.guestLog.summarise();
    this.engine?.close();
    this.conn?.close();
    this.conn = undefined;
    try {
      this.image?.close((err) => { if (err) this.warn(`${this.backendPath}: close: ${err.message}`); });
    } catch (err) {
      this.warn(`${this.backendPath}: close: ${(err as Error).message}`);
    }
    void this.stopWatches();
    this.resolveClosed();
  }

  private async stopWatches(): Promise<void> {
    const ws = this.watches.splice(0);
    if (this.feWatch) ws.push(this.feWatch);
    this.feWatch = undefined;
    await Promise.all(ws.map((w) => w.close().catch(() => undefined)));
  }

  /** Writes our state unless the backend directory is gone (never re-create it). */
  private async writeState(state: number): Promise<void> {
    const be = this.backendPath;
    const wrote = await this.xs.transaction(async (tx) => {
      const cur = await tx.tryRead(`${be}/state`);
      if (cur === undefined) return false;
      if (parseState(cur) !== state) await tx.write(`${be}/state`, String(state));
      return true;
    });
    if (wrote) {
      if (this.state !== state) log('%s: state %s', be, stateName(state));
      this.state = state;
    }
  }

  private async reportError(message: string): Promise<void> {
    await reportError(this.xs, this.backendPath, message)
      .catch((err: Error) => this.warn(`${this.backendPath}: cannot report the error in XenStore: ${err.message}`));
  }

  private closeDeadline(): number {
    return this.config.closeDeadlineMs ?? DEFAULT_CLOSE_DEADLINE_MS;
  }

  private warn(message: string): void {
    log(message);
    this.warnFn(message);
  }
}
