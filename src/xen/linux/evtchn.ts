// EventChannels over /dev/xen/evtchn (Linux drivers/xen/evtchn.c, include/uapi/xen/evtchn.h).
//
// A fired port is masked by the kernel and queued; the addon's fd watch (uv_poll in the main
// loop, src/native/fdwatch.c) read()s the queue and hands the ports to JS;
// the device unmasks by writing the port back once its ring is drained. A queue overflow makes
// read() fail with EFBIG until IOCTL_EVTCHN_RESET, which drops the queued ports while they stay
// masked: so after a reset every bound port is reported (overflow=true), and the device's
// re-scan ends in an unmask of each.
import * as fs from 'node:fs';
import * as os from 'node:os';
import createDebug from 'debug';
import { native } from '../../native/addon';
import type { NativeAddon, WatchHandle } from '../../native/types';
import type { EventChannels } from '../evtchn';
import { openDevice, xenError } from './errors';
import { type RoundTripTiming, processTiming } from './evtchn-timing';
import { EVTCHN_DEVICE, IOCTL, OFFSETOF, SIZEOF, encodeBindInterdomain, encodePort } from './uapi';

const debug = createDebug('afsfile:evtchn');
const EFBIG = os.constants.errno.EFBIG;
/** After an unexpected read error, wait this long before reading again (never spin). */
const ERROR_BACKOFF_MS = 1000;

type Handler = (ports: readonly number[], overflow: boolean) => void;

/** Counters for status output: what to look at when events seem slow or lost. */
export interface EvtchnStats {
  /** read()s of the device that returned ports (each is one wake-up of the event loop). */
  wakeups: number;
  ports: number;
  notifies: number;
  unmasks: number;
  /** EFBIG queue overflows, each followed by a reset and a full re-scan. */
  overflows: number;
  readErrors: number;
}

export class LinuxEventChannels implements EventChannels {
  private readonly bound = new Set<number>();
  private handler: Handler | undefined;
  private watch: WatchHandle | undefined;
  private closed = false;
  readonly stats: EvtchnStats = { wakeups: 0, ports: 0, notifies: 0, unmasks: 0, overflows: 0, readErrors: 0 };
  private backoff: NodeJS.Timeout | undefined;
  // Preallocated ioctl/write arguments: notify and unmask are on the hot path.
  private readonly portArg = new Uint8Array(SIZEOF.ioctl_evtchn_notify);
  private readonly portView = new DataView(this.portArg.buffer);
  private readonly unmaskBuf = new Uint32Array(1);
  private readonly ports: number[] = [];
  /** What the watch reads the device into (a page: the most one read returns), and its words. */
  private readonly delivery = new Uint8Array(4096);
  private readonly words = new Uint32Array(this.delivery.buffer);
  private readonly timing: RoundTripTiming;

  /** Takes ownership of fd (normally /dev/xen/evtchn opened by openEventChannels). */
  constructor(
    readonly fd: number,
    private readonly path = EVTCHN_DEVICE,
    private readonly addon: NativeAddon = native(),
  ) {
    this.timing = processTiming();
    this.timing.label = path;
  }

  private closedError(op: string): Error {
    return xenError(op, { errno: os.constants.errno.EBADF, message: `${op}: event channels closed` });
  }

  private ioctl(op: string, request: number, arg: Uint8Array | null): number {
    if (this.closed) throw this.closedError(op);
    try {
      return this.addon.ioctl(this.fd, request, arg);
    } catch (err) {
      throw xenError(`${op} on ${this.path}`, err);
    }
  }

  async bindInterdomain(remoteDomid: number, remotePort: number): Promise<number> {
    checkU32('remote domid', remoteDomid);
    checkU32('remote port', remotePort);
    const arg = new Uint8Array(SIZEOF.ioctl_evtchn_bind_interdomain);
    encodeBindInterdomain(new DataView(arg.buffer), remoteDomid, remotePort);
    const port = this.ioctl(`IOCTL_EVTCHN_BIND_INTERDOMAIN(domain ${remoteDomid}, port ${remotePort})`, IOCTL.EVTCHN_BIND_INTERDOMAIN, arg);
    this.bound.add(port);
    debug('bound domain %d port %d to local port %d', remoteDomid, remotePort, port);
    return port;
  }

  /**
   * Hardening for a per-device process: from now on this fd can bind only to `domid`
   * (IOCTL_EVTCHN_RESTRICT_DOMID; permanent for the fd). Not part of EventChannels.
   */
  restrictDomid(domid: number): void {
    if (!Number.isInteger(domid) || domid < 0 || domid > 0xffff) throw new RangeError(`domid must be 0..65535, got ${domid}`);
    const arg = new Uint8Array(SIZEOF.ioctl_evtchn_restrict_domid);
    new DataView(arg.buffer).setUint16(OFFSETOF['ioctl_evtchn_restrict_domid.domid'], domid, true);
    this.ioctl(`IOCTL_EVTCHN_RESTRICT_DOMID(${domid})`, IOCTL.EVTCHN_RESTRICT_DOMID, arg);
  }

  unbind(localPort: number): void {
    checkU32('port', localPort);
    encodePort(this.portView, localPort);
    this.bound.delete(localPort);
    this.ioctl(`IOCTL_EVTCHN_UNBIND(port ${localPort})`, IOCTL.EVTCHN_UNBIND, this.portArg);
    debug('unbound port %d', localPort);
  }

  notify(localPort: number): void {
    encodePort(this.portView, localPort);
    // Hot path: the operation's name is built only on failure.
    if (this.closed) throw this.closedError(`IOCTL_EVTCHN_NOTIFY(port ${localPort})`);
    try {
      this.addon.ioctl(this.fd, IOCTL.EVTCHN_NOTIFY, this.portArg);
    } catch (err) {
      throw xenError(`IOCTL_EVTCHN_NOTIFY(port ${localPort}) on ${this.path}`, err);
    }
    this.stats.notifies++;
    if (this.timing.enabled) this.timing.notify();
  }

  unmask(localPort: number): void {
    if (this.closed) return;
    this.unmaskBuf[0] = localPort;
    try {
      fs.writeSync(this.fd, this.unmaskBuf);
      this.stats.unmasks++;
    } catch (err) {
      throw xenError(`unmask port ${localPort} (write ${this.path})`, err);
    }
  }

  onPending(handler: Handler): void {
    this.handler = handler;
    if (this.watch || this.closed) return;
    this.watch = this.addon.watchFd(this.fd, (bytes, errno, length) => this.delivered(bytes, errno, length),
      this.delivery);
    debug('watching %s', this.path);
  }

  private delivered(bytes: Uint8Array | null, errno: number, length: number): void {
    if (this.closed) return;
    if (bytes) {
      // The watch reads into this.delivery (onPending), so bytes is always it, its first `length`
      // bytes whole native-endian u32 ports; copy them out. One array for every delivery:
      // handlers use it before they return (EventChannels).
      const ports = this.ports;
      ports.length = 0;
      const n = length >>> 2;
      const words = this.words;
      for (let i = 0; i < n; i++) {
        const p = words[i];
        // A port unbound after it fired may still be queued: nobody wants it.
        if (this.bound.has(p) && !ports.includes(p)) ports.push(p);
      }
      this.stats.wakeups++;
      if (this.timing.enabled) this.timing.wake();
      this.stats.ports += ports.length;
      if (ports.length) this.handler?.(ports, false);
      return;
    }
    if (errno === EFBIG) {
      debug('event queue overflowed: reset and report every bound port');
      this.stats.overflows++;
      this.reset();
      return;
    }
    // EOF or an unexpected error: say so where an administrator looks, then recover slowly.
    this.stats.readErrors++;
    const why = errno ? xenError(`read ${this.path}`, { errno }).message : `read ${this.path}: unexpected end of file`;
    process.stderr.write(`afsfile: ${why}; retrying in ${ERROR_BACKOFF_MS} ms\n`);
    if (errno === 0) {
      // The watch has ended (end of file stops its uv_poll for good); start a new one.
      if (this.watch) this.addon.watchClose(this.watch);
      this.watch = undefined;
    }
    this.backoff = setTimeout(() => {
      this.backoff = undefined;
      if (this.closed) return;
      if (this.watch) this.addon.watchRearm(this.watch);
      else if (this.handler) this.onPending(this.handler);
      this.handler?.([...this.bound], true);
    }, ERROR_BACKOFF_MS);
  }

  private reset(): void {
    this.ioctl('IOCTL_EVTCHN_RESET', IOCTL.EVTCHN_RESET, null);
    if (this.watch) this.addon.watchRearm(this.watch);
    this.handler?.([...this.bound], true);
  }

  /** Whether the watch keeps the process alive (default: yes, a device waits for events). */
  ref(keepAlive: boolean): void {
    if (this.watch) this.addon.watchRef(this.watch, keepAlive);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timing.enabled) this.timing.end();
    if (this.backoff) clearTimeout(this.backoff);
    // Stop the watch before closing the fd, so it never reads a reused descriptor.
    if (this.watch) this.addon.watchClose(this.watch);
    this.watch = undefined;
    this.bound.clear();
    // Closing the fd unbinds every port bound through it.
    fs.closeSync(this.fd);
  }
}

function checkU32(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new RangeError(`${what} must be a 32-bit unsigned integer, got ${v}`);
}

/** Opens /dev/xen/evtchn; the error says what to do when it is missing. */
export function openEventChannels(path = EVTCHN_DEVICE, addon?: NativeAddon): LinuxEventChannels {
  // The device first: without /dev/xen the clear message matters, not the addon.
  const fd = openDevice(path, fs.constants.O_NONBLOCK);
  try {
    return new LinuxEventChannels(fd, path, addon ?? native());
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}
