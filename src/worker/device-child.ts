// `afsfile worker --device <backend path>`: one device, one process (DESIGN contracts, Process
// model). The host of the Device (src/worker/device/: image open, afsfile-status, the xenbus
// handshake, the ring, removal): it loads the platform cli chose, writes the status file, and turns
// SIGTERM or the supervisor's death into a quiesce that leaves XenStore as it is.
import * as fs from 'node:fs';
import { LATENCY_BUCKETS_MS } from '../engine/stats';
import type { PoolBudget } from '../engine/pool-budget';
import { setTimeout as sleep } from 'node:timers/promises';
import { isXenStoreError } from '../xen/xenstore';
import type { Platform, PlatformLoader } from '../xen/platform';
import { type XenStoreClient, connectXenStore } from '../xen/xenstore-client';
import { type BackendPath, statusName } from './backend-path';
import { Device, type DeviceImage, imagePathFromParams, openFailure, readOnlyFromMode, reportError } from './device';
import type { FromDevice, ToDevice } from './device-link';
import { Image } from '../image/image';
import type { DeviceRetune } from './device-retune';
import { EXIT_NOT_OPENED, EXIT_PERMANENT, EXIT_REFUSED } from './exit-codes';
import type { Priority } from '../util/journal';
import { stderrLine } from './log';
import { signalRenew } from './renew-signal';
import { SharedTicker } from './shared-ticker';
import { StatusCadence } from './status-cadence';
import { pidAlive, readStatusFiles, removeStatus, writeStatus } from './status-file';
import { identityStatusName } from '../renew/status';
import { DeviceLock, INCOMING_SUFFIX, lockHolder } from './device-lock';
import { LeaseGuard } from './lease-guard';
import { adoptionFile, retireHosted, watchAdoption } from './host-handover';
import type { LockHolder, LockPolicy } from '../image/lock';
import { type GateCheck, RenewWatch, gateStores, tokenMargins } from './token-gate';
import { KeyEpoch } from './key-epoch';

/** How often an idle device looks for a token renewal (renew.json); a busy one also looks at
 * each status write. Renewals come at half a token's lifetime, hours before expiry. */
const RENEWAL_CHECK_MS = 15_000;

/** Every device of this process looks for renewals on the same tick (device hosts). */
const renewalTicks = new SharedTicker(RENEWAL_CHECK_MS);

/** Errors that mean "the token is gone" (OpenAFS: EACCES; kAFS: the key errnos): renew is asked to refresh. */
const TOKEN_ERRORS = new Set(['EACCES', 'EKEYEXPIRED', 'ENOKEY', 'EKEYREJECTED', 'EKEYREVOKED']);

/** How long a device process whose supervisor is gone keeps its image lock for the next one
 * (systemd restarts the worker after RestartSec=2; its device processes adopt the lock). */
const HAND_ON_MS = 60_000;

export interface DeviceChildOptions {
  readonly backend: BackendPath;
  readonly runDir: string;
  readonly platform: PlatformLoader;
  readonly env: NodeJS.ProcessEnv;
  readonly holdTimeoutS: number;
  readonly fsyncIntervalS: number;
  readonly maxRequests: number;
  readonly maxInflight: number;
  readonly maxIndirectSegments: number;
  readonly maxRingPageOrder: number;
  readonly maxQueues: number;
  readonly direct: boolean;
  readonly imageRoots: readonly string[];
  readonly restarts: number;
  /** The data-buffer budget of this process, shared by the devices it serves, and the same for
   * the write data they keep until an fsync. */
  readonly budget?: { readonly buffers: PoolBudget; readonly kept: PoolBudget };
  /** An image on a file system without working locks: attached with a warning, or refused. */
  readonly lockPolicy: LockPolicy;
  /** How long a migration destination waits for the source's lock when its guest connects. */
  readonly migrationLockWaitS: number;
  /** Served by a device host among other devices (device-host.ts): a successor that adopted
   * this device's image lock ends its hand-on by a file, not by a signal to the whole process. */
  readonly hosted?: boolean;
  /** To whoever started this process: what it opened, and the verdict on it. */
  readonly link?: DeviceLink;
}

export interface DeviceLink {
  send(m: FromDevice): Promise<void>;
  /** The exclusivity verdict on what was reported opened (undefined: the parent is gone). */
  verdict(): Promise<Extract<ToDevice, { t: 'verdict' }> | undefined>;
}

interface OwnImage {
  readonly image: Image;
  readonly path: string;
  readonly readOnly: boolean;
}

export class DeviceChild {
  private xs: XenStoreClient | undefined;
  private platform: Platform | undefined;
  private device: Device | undefined;
  private done!: (code: number) => void;
  private readonly finished = new Promise<number>((r) => (this.done = r));
  private stopping = false;
  private readonly errors: string[] = [];
  /** Status file written on change, at most every few seconds while busy, never when idle. */
  private readonly status = new StatusCadence(
    () => {
      this.epoch.poke();
      return this.writeStatusFile();
    },
    () => this.busy(),
  );
  /** Stops this device's renewal checks (set once it has started). */
  private renewalTimer: (() => void) | undefined;
  private readonly tag: string;
  private readonly tokenCheck: GateCheck;
  /** Which renewal the image's open file has its key from: stores wait for a reopen after one. */
  private readonly epoch: KeyEpoch;
  private timings: DeviceRetune;
  /** The per-domain identity this process serves with (its opener's PAG), if not the host's. */
  private readonly identity: string | undefined;
  /** The cell-wide image lock (device-lock.ts). */
  private readonly lock: DeviceLock;
  /** Said once: on OpenAFS a renewal leaves the lock where it is. */
  private keptLockNoted = false;
  /** Ends the wait for a successor (SIGTERM after the supervisor is gone). */
  private endHandOn: (() => void) | undefined;

  constructor(private readonly o: DeviceChildOptions) {
    this.tag = `device ${o.backend.domid}/${o.backend.devid}`;
    this.timings = { holdTimeoutS: o.holdTimeoutS, fsyncIntervalS: o.fsyncIntervalS };
    const id = o.env.AFSFILE_IDENTITY;
    this.identity = id && /^[a-z0-9][a-z0-9_-]{0,31}$/.test(id) ? id : undefined;
    // The tokens this process uses: its identity's (its opener's status file), else renew's.
    const watch = new RenewWatch(o.runDir, Date.now, this.identity ? identityStatusName(this.identity) : undefined);
    this.tokenCheck = watch.check(tokenMargins(o.env));
    // Before the image is opened (the count then is what its key has at least).
    this.epoch = new KeyEpoch(watch, {
      // The lock follows the key: taken again through a new open file (device-lock.ts rekey).
      reopen: (cb) => this.device?.reopenImage((err) => { cb(err); if (!err) this.rekeyLock(); }) ?? false,
      note: (m, level) => this.note(m, level),
    });
    this.lock = new DeviceLock({
      policy: o.lockPolicy, migrationWaitMs: o.migrationLockWaitS * 1000,
      onChange: () => this.status.changed(), note: (m) => this.note(m, 'info'),
      keyExpiry: () => watch.expiry(),
    });
  }

  /**
   * SIGHUP with the config read again: the hold timeout and fsync interval apply now. The
   * limits advertised to the frontend and the buffer sizes stay until the device next starts.
   */
  retune(t: DeviceRetune): void {
    if (t.holdTimeoutS === this.timings.holdTimeoutS && t.fsyncIntervalS === this.timings.fsyncIntervalS) return;
    this.timings = t;
    this.device?.retune({ holdTimeoutMs: t.holdTimeoutS * 1000, fsyncIntervalMs: t.fsyncIntervalS * 1000 });
    stderrLine(`${this.tag}: reloaded: hold-timeout ${t.holdTimeoutS} s, fsync-interval ${t.fsyncIntervalS} s`);
    this.status.writeNow();
  }

  async run(): Promise<number> {
    const predecessor = await this.waitForPreviousHolder();
    if (this.stopping) return 0;
    this.xs = await connectXenStore({ env: this.o.env, log: (l) => stderrLine(`${this.tag}: ${l}`) });
    // The open may hang (a dead file server): a stop meanwhile ends the process all the same.
    const opening = this.openOwnImage(this.xs, predecessor);
    const own = await Promise.race([opening, this.finished]);
    if (typeof own === 'number') {
      if (!this.stopping) this.xs.close();
      this.lock.release();
      // Stopped while the open hung: what it opens later is let go (a device host serves on).
      void opening.then((o) => {
        if (typeof o === 'number') return;
        closeInBackground(o.image);
        this.lock.release();
      });
      return own;
    }
    try {
      this.platform = await this.o.platform.load();
    } catch (e) {
      // Restarting cannot help (no /dev/xen, no addon): report it on the device and tell the
      // supervisor, which then answers the removal itself.
      const msg = `cannot use the ${this.o.platform.name} platform: ${(e as Error).message}`;
      this.note(msg, 'err');
      await reportError(this.xs, this.o.backend.path, msg).catch(() => undefined);
      this.xs.close();
      closeInBackground(own.image);
      this.lock.release();
      return EXIT_PERMANENT;
    }
    const device = new Device(this.xs, this.platform, this.o.backend.path, {
      limits: { maxIndirectSegments: this.o.maxIndirectSegments, maxRingPageOrder: this.o.maxRingPageOrder, maxQueues: this.o.maxQueues },
      engine: {
        maxRequests: this.o.maxRequests,
        maxBytes: this.o.maxInflight,
        budget: this.o.budget?.buffers,
        keepBudget: this.o.budget?.kept,
        fsyncIntervalMs: this.timings.fsyncIntervalS * 1000,
        holdTimeoutMs: this.timings.holdTimeoutS * 1000,
        onTransientError: (code) => { if (TOKEN_ERRORS.has(code)) this.kickRenew(code); },
        onBusy: () => this.status.changed(),
      },
      direct: this.o.direct,
      // Opened above, inside this process's PAG, and let through by the supervisor.
      // Gated on AFS: no store with an expired token (token-gate.ts); held as EKEYEXPIRED instead.
      // Writes stop when the image lock is lost or may have lapsed (lease-guard.ts).
      openImage: (path, readOnly) => {
        if (path === own.path && readOnly === own.readOnly) {
          return this.guarded(gateStores(own.image, this.tokenCheck, undefined, this.epoch));
        }
        // params changed in between (a CD-ROM media change): what the backend names now.
        closeInBackground(own.image);
        const opts = { readOnly, direct: this.o.direct, roots: this.o.imageRoots };
        return this.guarded(gateStores(Image.open(path, opts), this.tokenCheck, undefined, this.epoch));
      },
      warn: (m) => this.note(m),
      connectGate: (poke) => this.lock.gate(poke),
      restrictEventChannels: true,
      onChange: () => this.status.changed(),
    });
    this.device = device;
    if (this.stopping) return this.finished;
    await device.start();
    this.status.writeNow();
    // After each renewal the image is opened again (key-epoch.ts): asked by the token gate
    // when a store comes, and here for an idle device (one timer for all devices of a host).
    this.renewalTimer = renewalTicks.add(() => this.epoch.poke());
    this.epoch.start();
    // Removal (or the backend dir vanishing) ends the device: the process is done.
    // Not when it closed for a quiesce with the supervisor gone: the process stays, its status
    // file telling the next one where the image lock is (quiesce).
    void device.closed.then(() => { if (!this.handingOn) this.end(true); });
    return this.finished;
  }

  /**
   * Opens the image the backend names, here: this process is in its identity's PAG and does
   * every I/O of the device (OpenAFS checks the caller's credentials on each). The supervisor
   * gets (dev, ino, realpath) and answers with the exclusivity verdict; only then is the image
   * used. A number: the exit status (nothing to serve).
   */
  private async openOwnImage(xs: XenStoreClient, predecessor: LockHolder | undefined): Promise<OwnImage | number> {
    const be = this.o.backend.path;
    const [params, mode, domain] = await Promise.all([
      xs.tryRead(`${be}/params`), xs.tryRead(`${be}/mode`), xs.tryRead(`/local/domain/${this.o.backend.domid}/name`),
    ]);
    let path: string | undefined;
    let own: OwnImage;
    try {
      path = imagePathFromParams(params);
      const readOnly = readOnlyFromMode(mode);
      const opts = { readOnly, direct: this.o.direct, roots: this.o.imageRoots };
      own = { path, readOnly, image: await Image.openAsync(path, opts) };
    } catch (e) {
      const message = openFailure(e);
      this.note(message);
      if (this.o.link) await this.o.link.send({ t: 'open-failed', image: path, message });
      else await reportError(xs, be, message).catch(() => undefined);
      return EXIT_NOT_OPENED;
    }
    const { image } = own;
    const incoming = domain?.endsWith(INCOMING_SUFFIX) === true;
    const link = this.o.link;
    if (link) {
      const { dev, ino, realpath } = image;
      const writable = !own.readOnly;
      await link.send({ t: 'opened', dev, ino, realpath, image: own.path, writable, incoming });
      const v = await link.verdict();
      if (!v?.ok) {
        // Refused (the supervisor reported it on the device), or the supervisor is gone.
        closeInBackground(image);
        return v ? EXIT_REFUSED : 0;
      }
    }
    // After this host's verdict (so that its own devices keep the order of their attaches) and
    // before afsfile-status: a conflict with another host is refused at once (device-lock.ts).
    const locked = await this.lock.acquire(image, own.path, !own.readOnly, incoming, predecessor);
    if (!locked.ok) {
      this.note(locked.message);
      closeInBackground(image);
      if (link) await link.send({ t: 'locked', ok: false, busy: locked.busy, message: locked.message });
      else await reportError(xs, be, locked.message, locked.busy ? 'busy' : 'error').catch(() => undefined);
      return locked.busy ? EXIT_REFUSED : EXIT_NOT_OPENED;
    }
    if (predecessor) await this.retire(predecessor);
    if (link) await link.send({ t: 'locked', ok: true });
    return own;
  }

  /**
   * A child of a supervisor that died may still be serving this device: let it leave first
   * (it quiesces as soon as it notices its parent is gone). One that holds the image lock waits
   * for us to adopt it: returned, and retired once adopted (retire).
   */
  private async waitForPreviousHolder(): Promise<LockHolder | undefined> {
    const name = statusName(this.o.backend);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const prevStatus = readStatusFiles(this.o.runDir).get(name);
      const prev = prevStatus?.pid;
      if (prev === process.pid) return undefined;
      const alive = pidAlive(prev, prevStatus?.pidStart);
      const holder = lockHolder(prevStatus, alive);
      this.predecessorHosted = prevStatus?.hosted === true;
      if (holder && prevStatus?.handingOn === true) return holder;
      if (!alive || Date.now() >= deadline || this.stopping) return holder;
      await sleep(50);
    }
  }

  /** The predecessor's lock is ours now: it may go (SIGTERM ends its wait), and must, before we
   * serve the ring. */
  private async retire(prev: LockHolder): Promise<void> {
    if (!pidAlive(prev.pid, prev.pidStart)) return;
    if (this.predecessorHosted) {
      // Not adopted (its hand-on is over): that device has let go already, and its host serves on.
      if (this.lock.status()?.state !== 'adopted') return;
      await retireHosted(this.o.runDir, statusName(this.o.backend), prev, () => this.stopping);
      return;
    }
    try {
      process.kill(prev.pid, 'SIGTERM');
    } catch {
      return;
    }
    const deadline = Date.now() + 10_000;
    while (pidAlive(prev.pid, prev.pidStart) && Date.now() < deadline && !this.stopping) await sleep(20);
  }

  /** SIGTERM/SIGINT or the supervisor gone: stop, drain, fsync, leave XenStore as it is
   * (Connected stays Connected) so that the next worker re-attaches. With the supervisor gone,
   * the image lock is kept for the next worker's process (HAND_ON_MS). */
  async quiesce(parentGone = false): Promise<void> {
    if (this.stopping) {
      if (!parentGone) this.endHandOn?.();
      return;
    }
    this.stopping = true;
    this.lock.cancel();
    this.handingOn = parentGone && this.lock.status()?.fd != null;
    if (this.device) await this.device.quiesce().catch((e: Error) => this.note(`quiesce: ${e.message}`));
    if (this.handingOn) {
      const stop = new Promise<void>((r) => (this.endHandOn = r));
      this.status.writeNow();
      // In a device host the successor of this device alone says so (a SIGTERM ends them all).
      const adopted = this.o.hosted ? watchAdoption(this.o.runDir, statusName(this.o.backend), stop) : undefined;
      adopted?.then(() => this.endHandOn?.(), () => undefined);
      await this.lock.handOn(HAND_ON_MS, stop);
      this.endHandOn?.();
      this.handingOn = false;
      this.end(false);
      // After the last write of this device's status file: its successor writes it from now on.
      if (adopted) fs.rmSync(adoptionFile(this.o.runDir, statusName(this.o.backend)), { force: true });
      return;
    }
    this.end(false);
  }

  /** Waiting, the supervisor gone, for the next worker's process to adopt the image lock. */
  private handingOn = false;
  /** The previous process of this device is a device host (its status file says so). */
  private predecessorHosted = false;

  /** Watches for a lost image lock (lease-guard.ts); one per process, for its writable image. */
  private guard: LeaseGuard | undefined;

  private guarded(img: DeviceImage): DeviceImage {
    if (img.readOnly) return img;
    this.guard ??= new LeaseGuard({
      lock: () => this.lock.status(),
      verify: () => this.lock.verify(),
      lost: (m) => { this.lock.markLost(m); this.note(m, 'err'); },
      // Only an AFS lock is extended with the token.
      tokenTrouble: () => (this.lock.status()?.reach === 'afs' ? this.tokenCheck('fsync') : undefined),
    });
    return this.guard.wrap(img);
  }

  /**
   * After a reopen for renewed tokens, on kAFS: the lock is taken again with the new key, stores
   * held meanwhile; if another host got it in between, the device writes no more.
   */
  private rekeyLock(): void {
    if (this.stopping || this.lock.status()?.reach !== 'afs') return;
    if (!this.lock.followsKey) {
      // OpenAFS: its daemon extends the lock whatever the tokens (lock-fs.ts lockFollowsKey).
      if (!this.keptLockNoted) this.note('the image lock stays on its open file: the OpenAFS client extends it', 'info');
      this.keptLockNoted = true;
      return;
    }
    const lost = (m: string | undefined) => { if (m !== undefined) { this.lock.markLost(m); this.note(m, 'err'); } };
    // Its key lapsed already: the file server keeps the old lock a while; writes go on until then.
    if (this.guard) void this.guard.hold(() => this.lock.rekey(), this.lock.staleKeyHorizon());
    else void this.lock.rekey().then(lost); // read-only: nothing to hold
  }

  private end(removed: boolean): void {
    this.stopping = true;
    this.renewalTimer?.();
    this.guard?.close();
    // The image is closed (Device's finish): in a device host the process lives on, so the
    // lock's own descriptor goes now, not at exit (the lock ends with the last of the two).
    this.lock.release();
    if (!removed) this.status.writeNow();
    this.status.close();
    if (removed) removeStatus(this.o.runDir, statusName(this.o.backend));
    this.platform?.close();
    this.xs?.close();
    this.done(0);
  }

  private lastKick = 0;
  /** EACCES (or a kAFS key error) from AFS usually means the token expired: ask renew (DESIGN
   * contracts, Signals) to refresh now, as k5start does on SIGALRM; coalesced so a burst of
   * errors sends one. */
  private kickRenew(code: string): void {
    if (Date.now() - this.lastKick < 30_000) return;
    const r = signalRenew(this.o.env);
    if (r === undefined) return;
    this.lastKick = Date.now();
    this.note(r.ok ? `${code} on the image: asked renew (pid ${r.pid}) to refresh the tokens` : `${code} on the image, and renew (AFSFILE_RENEW_PID=${r.pid}) was not signalled: ${r.why}`);
  }

  /** A line for the administrator that is also kept in the status file's recent errors. */
  private note(message: string, level: Priority = 'warning'): void {
    stderrLine(`${this.tag}: ${message}`, level);
    this.errors.push(`${new Date().toISOString()} ${message}`);
    if (this.errors.length > 10) this.errors.shift();
    this.status.changed();
  }

  /** The figures can move without an event: requests in flight, or data awaiting its fsync. */
  private busy(): boolean {
    const e = this.device?.stats().engine;
    return e !== undefined && (e.inFlight > 0 || e.dirty);
  }

  /** Writes the status file; returns its fields as JSON (to tell whether anything moved). */
  private writeStatusFile(): string {
    const s = this.device?.stats();
    const e = s?.engine;
    const fields = {
      role: 'device',
      backend: this.o.backend.path,
      domid: this.o.backend.domid,
      devid: this.o.backend.devid,
      kind: this.o.backend.kind,
      platform: this.o.platform.name,
      identity: this.identity ?? 'host',
      image: s?.image,
      readOnly: s?.readOnly,
      state: s?.state,
      connected: s?.connected ?? false,
      queues: s?.queues ?? 0,
      connects: s?.connects ?? 0,
      inFlight: e?.inFlight ?? 0,
      inFlightBytes: e?.inFlightBytes ?? 0,
      requests: e?.requests,
      bytesRead: e?.bytesRead ?? 0,
      bytesWritten: e?.bytesWritten ?? 0,
      ioErrors: e?.errors ?? 0,
      lastFsync: e && e.lastFsync ? new Date(e.lastFsync).toISOString() : undefined,
      fsyncErrors: e?.fsyncErrors ?? 0,
      // status-schema.ts: bucket i counts latencies <= boundsMs[i]; the last, the slower ones.
      latency: e
        ? { boundsMs: LATENCY_BUCKETS_MS, counts: e.latency, sumMs: Math.round(e.latencySumMs * 1000) / 1000 }
        : undefined,
      stalls: e?.stalls,
      held: e?.held ?? 0,
      persistentGrants: e?.persistentGrants,
      dirty: e?.dirty ?? false,
      ioPath: s?.ioPath,
      errors: this.errors,
      restarts: this.o.restarts,
      holdTimeoutS: this.timings.holdTimeoutS,
      fsyncIntervalS: this.timings.fsyncIntervalS,
      lock: this.lock.status(),
      handingOn: this.handingOn,
      ...(this.o.hosted ? { hosted: true } : {}),
    };
    try {
      writeStatus(this.o.runDir, statusName(this.o.backend), fields);
    } catch (err) {
      if (!isXenStoreError(err)) stderrLine(`${this.tag}: cannot write the status file: ${(err as Error).message}`);
    }
    return JSON.stringify(fields);
  }
}

/** Closing can wait on the file server (AFS stores dirty data at the last close): not on the
 * loop, nor on the thread pool the other disks of a device host share (Image.close). */
function closeInBackground(image: Image): void {
  image.close((e) => { if (e) stderrLine(`${image.path}: close: ${e.message}`); });
}
