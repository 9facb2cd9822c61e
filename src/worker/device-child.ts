// `afsfile worker --device <backend path>`: one device, one process (DESIGN contracts, Process
// model). Opens the image (inside the PAG), reports afsfile-status / afsfile-error, follows the
// xenbus handshake (facts §2.5) and libxl's removal (facts §2.8), and writes its status file.
//
// The ring itself (map, bind, serve requests, Connected) is the Device of src/worker/device/
// (branch core) on the platform from --platform; this file is its host process. Until that
// lands, a device whose frontend parameters are valid stops short of Connected with a message.
import * as fs from 'node:fs';
import { XenbusState, parseState, stateName } from '../xen/xenbus-state';
import { isXenStoreError, type Watch } from '../xen/xenstore';
import { type XenStoreClient, connectXenStore } from '../xen/xenstore-client';
import { type BackendPath, statusName } from './backend-path';
import { FrontendParamError, readFrontendParams } from './frontend-params';
import { type OpenedImage, openImage } from './image-open';
import { type PlatformName, loadPlatform } from './platform-choice';
import { pidAlive, readStatusFiles, removeStatus, writeStatus } from './status-file';
import { stderrLine } from './log';

export interface DeviceChildOptions {
  readonly backend: BackendPath;
  readonly runDir: string;
  readonly platform: PlatformName;
  readonly env: NodeJS.ProcessEnv;
  readonly holdTimeoutS: number;
  readonly maxRingPageOrder: number;
  readonly maxQueues: number;
  readonly restarts: number;
}

/** libxl waits 10 s for Closed; answer within this even when fsync hangs (contract 6). */
const CLOSE_DEADLINE_MS = 8000;

export class DeviceChild {
  private xs!: XenStoreClient;
  private image: OpenedImage | undefined;
  private imageError: string | undefined;
  private readonly watches: Watch[] = [];
  private busy = false;
  private again = false;
  private done!: (code: number) => void;
  private readonly finished = new Promise<number>((r) => (this.done = r));
  private stopping = false;
  private frontend = '';
  private beState: number | undefined;
  private lastFsync: string | undefined;
  private readonly errors: string[] = [];
  private statusTimer: NodeJS.Timeout | undefined;
  private readonly tag: string;

  constructor(private readonly o: DeviceChildOptions) {
    this.tag = `device ${o.backend.domid}/${o.backend.devid}`;
  }

  async run(): Promise<number> {
    await this.waitForPreviousHolder();
    this.xs = await connectXenStore({ env: this.o.env, log: (l) => stderrLine(`${this.tag}: ${l}`) });
    const B = this.o.backend.path;
    const [frontend, params, mode] = await Promise.all([
      this.xs.tryRead(`${B}/frontend`), this.xs.tryRead(`${B}/params`), this.xs.tryRead(`${B}/mode`),
    ]);
    if (frontend === undefined && params === undefined) {
      stderrLine(`${this.tag}: ${B} does not exist; nothing to serve`);
      this.xs.close();
      return 0;
    }
    this.frontend = frontend ?? `/local/domain/${this.o.backend.domid}/device/vbd/${this.o.backend.devid}`;
    const opened = openImage(params, mode);
    if ('error' in opened) await this.fail(opened.error);
    else {
      this.image = opened;
      await this.xs.transaction(async (tx) => {
        await tx.write(`${B}/afsfile-status`, 'opened');
        await tx.rm(`${B}/afsfile-error`);
      });
    }
    this.writeStatusFile();
    this.statusTimer = setInterval(() => this.writeStatusFile(), 2000);
    this.statusTimer.unref();
    this.watches.push(await this.xs.watch(B, () => this.evaluate()));
    this.watches.push(await this.xs.watch(`${this.frontend}/state`, () => this.evaluate()));
    return this.finished;
  }

  /** A child of a supervisor that died may still be serving this device: let it leave first. */
  private async waitForPreviousHolder(): Promise<void> {
    const prev = readStatusFiles(this.o.runDir).get(statusName(this.o.backend))?.pid;
    if (prev === process.pid) return;
    const deadline = Date.now() + 10_000;
    while (pidAlive(prev) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  }

  /** SIGTERM/SIGINT or the supervisor gone: stop, fsync, leave XenStore as it is (Connected
   * stays Connected) so the next worker re-attaches. */
  async quiesce(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.closeWatches();
    this.xs?.close();
    if (this.image) {
      await fsyncWithin(this.image.fd, CLOSE_DEADLINE_MS).catch(() => undefined);
      fs.closeSync(this.image.fd);
      this.image = undefined;
    }
    clearInterval(this.statusTimer);
    this.done(0);
  }

  private evaluate(): void {
    if (this.busy) { this.again = true; return; }
    this.busy = true;
    void (async () => {
      try {
        do {
          this.again = false;
          if (!this.stopping) await this.step();
        } while (this.again);
      } catch (e) {
        if (!isXenStoreError(e, 'ECONNRESET')) this.note(`internal error: ${(e as Error).stack ?? String(e)}`);
      } finally {
        this.busy = false;
      }
    })();
  }

  private async step(): Promise<void> {
    const B = this.o.backend.path;
    const [state, online, hotplug, fe] = await Promise.all([
      this.xs.tryRead(`${B}/state`), this.xs.tryRead(`${B}/online`),
      this.xs.tryRead(`${B}/hotplug-status`), this.xs.tryRead(`${this.frontend}/state`),
    ]);
    if (state === undefined) {
      // The toolstack removed the backend dir: nothing is left to answer to.
      await this.finish('the backend directory was removed', false);
      return;
    }
    const be = parseState(state);
    const front = parseState(fe);
    this.beState = be;
    if (online?.trim() === '0' && (be === XenbusState.Closing || be === XenbusState.Closed)) {
      await this.finish('the toolstack detached the device (online=0)', be !== XenbusState.Closed);
      return;
    }
    if (front === XenbusState.Closing && be !== XenbusState.Closing && be !== XenbusState.Closed) {
      await this.setState(XenbusState.Closing);
      return;
    }
    if (front === XenbusState.Closed || front === XenbusState.Unknown) {
      if (be !== XenbusState.Closed) await this.close(true);
      if (online?.trim() === '0') await this.finish('the frontend closed and the device is offline', false);
      return;
    }
    // Reconnect after a frontend reset (kexec, driver reload): back to InitWait (facts §2.6).
    if (front === XenbusState.Initialising && be === XenbusState.Closed && online?.trim() === '1') {
      await this.setState(XenbusState.InitWait);
      return;
    }
    if (this.imageError) return;
    if ((front === XenbusState.Initialised || front === XenbusState.Connected) &&
        hotplug?.trim() === 'connected' && be !== XenbusState.Connected && be !== XenbusState.Closing) {
      await this.connect();
    }
  }

  private async connect(): Promise<void> {
    let params;
    try {
      params = await readFrontendParams(this.xs, this.frontend, { maxRingPageOrder: this.o.maxRingPageOrder, maxQueues: this.o.maxQueues });
    } catch (e) {
      if (!(e instanceof FrontendParamError)) throw e;
      // As xenbus_dev_fatal: report and go Closing; the device stays down, the worker runs on.
      await this.fail(`${e.message}; the guest's blkfront published a bad value`, XenbusState.Closing);
      return;
    }
    try {
      await loadPlatform(this.o.platform, this.o.env);
    } catch (e) {
      await this.fail(`cannot connect the ring (${params.queues.length} queue(s), order ${params.ringPageOrder}): ${(e as Error).message}`);
      return;
    }
    await this.fail('cannot connect the ring: the device state machine (src/worker/device) is not in this build');
  }

  /** afsfile-status=error + afsfile-error, optionally a state; the process keeps running so
   * that the removal is still answered. */
  private async fail(message: string, state?: number): Promise<void> {
    this.imageError = message;
    this.note(message);
    const B = this.o.backend.path;
    await this.xs.transaction(async (tx) => {
      if ((await tx.tryRead(`${B}/state`)) === undefined) return;
      await tx.write(`${B}/afsfile-status`, 'error');
      await tx.write(`${B}/afsfile-error`, message);
      if (state !== undefined) await tx.write(`${B}/state`, String(state));
    });
    this.writeStatusFile();
  }

  private async setState(s: number): Promise<void> {
    const B = this.o.backend.path;
    await this.xs.transaction(async (tx) => {
      if ((await tx.tryRead(`${B}/state`)) !== undefined) await tx.write(`${B}/state`, String(s));
    });
    this.beState = s;
    this.writeStatusFile();
  }

  /** Drain (nothing in flight without a ring), fsync within the deadline, then Closed. */
  private async close(writeClosed: boolean): Promise<void> {
    if (this.image) {
      const ok = await fsyncWithin(this.image.fd, CLOSE_DEADLINE_MS - 1000).then(() => true, (e: Error) => {
        this.note(`fsync of ${this.image?.path} before Closed failed: ${e.message}; retrying in the background`);
        return false;
      });
      if (ok) this.lastFsync = new Date().toISOString();
    }
    if (writeClosed) await this.setState(XenbusState.Closed);
  }

  private async finish(why: string, writeClosed: boolean): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    stderrLine(`${this.tag}: ${why}; closing`);
    await this.close(writeClosed).catch((e: Error) => this.note(`closing: ${e.message}`));
    await this.closeWatches();
    if (this.image) {
      await this.retryFsync(this.image);
      fs.closeSync(this.image.fd);
      this.image = undefined;
    }
    this.xs.close();
    clearInterval(this.statusTimer);
    removeStatus(this.o.runDir, statusName(this.o.backend));
    this.done(0);
  }

  /** After Closed: keep the fd and retry fsync up to --hold-timeout, loudly (contract 6). */
  private async retryFsync(img: OpenedImage): Promise<void> {
    const deadline = Date.now() + this.o.holdTimeoutS * 1000;
    for (let attempt = 1; ; attempt++) {
      try {
        await fsyncWithin(img.fd, 5000);
        return;
      } catch (e) {
        if (Date.now() > deadline) {
          stderrLine(`${this.tag}: giving up fsync of ${img.path} after ${attempt} attempts: ${(e as Error).message}; recent writes may be lost`);
          return;
        }
        if (attempt === 1 || attempt % 10 === 0) stderrLine(`${this.tag}: fsync of ${img.path} still failing (${(e as Error).message}); retrying`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /** Never waits for xenstored (it may be the thing that is gone): closing the connection
   * drops the watches anyway. */
  private async closeWatches(): Promise<void> {
    for (const w of this.watches.splice(0)) void w.close().catch(() => undefined);
  }

  private note(message: string): void {
    stderrLine(`${this.tag}: ${message}`);
    this.errors.push(`${new Date().toISOString()} ${message}`);
    if (this.errors.length > 10) this.errors.shift();
  }

  private writeStatusFile(): void {
    if (this.stopping && !this.image) return;
    try {
      writeStatus(this.o.runDir, statusName(this.o.backend), {
        role: 'device',
        backend: this.o.backend.path,
        domid: this.o.backend.domid,
        devid: this.o.backend.devid,
        kind: this.o.backend.kind,
        image: this.image?.path,
        writable: this.image?.writable,
        sizeBytes: this.image?.size,
        state: this.beState === undefined ? undefined : stateName(this.beState),
        afsfileStatus: this.imageError ? 'error' : this.image ? 'opened' : 'starting',
        inFlight: 0,
        bytesRead: 0,
        bytesWritten: 0,
        lastFsync: this.lastFsync,
        errors: this.errors,
        restarts: this.o.restarts,
      });
    } catch (e) {
      stderrLine(`${this.tag}: cannot write the status file: ${(e as Error).message}`);
    }
  }
}

function fsyncWithin(fd: number, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`fsync did not finish within ${ms} ms`)), ms);
    fs.fsync(fd, (err) => {
      clearTimeout(t);
      if (err) reject(err);
      else resolve();
    });
  });
}
