// The backend's event channels in the simulator, with the semantics of Linux
// drivers/xen/evtchn.c that src/xen/evtchn.ts specifies: an arriving event masks its port and
// reports it pending once; events while masked are remembered (the pending bit) and reported
// again at unmask.
import createDebug from 'debug';
import type { EventChannels } from '../xen/evtchn';
import type { GuestLink } from './guest';

const log = createDebug('afsfile:sim:evtchn');

interface Bound {
  readonly link: GuestLink;
  readonly remotePort: number;
  masked: boolean;
  /** An event arrived while masked: report again at unmask. */
  latched: boolean;
}

export class SimEventChannels implements EventChannels {
  private readonly bound = new Map<number, Bound>();
  private nextPort = 1;
  private handler: ((ports: readonly number[], overflow: boolean) => void) | undefined;
  private queued: number[] = [];
  private overflowPending = false;
  private scheduled = false;
  private readonly listening = new WeakSet<GuestLink>();
  private closed = false;

  constructor(private readonly resolve: (domid: number) => Promise<GuestLink>, private readonly selfDomid = 0) {}

  async bindInterdomain(remoteDomid: number, remotePort: number): Promise<number> {
    if (this.closed) throw Object.assign(new Error('event channels closed'), { code: 'EBADF' });
    const link = await this.resolve(remoteDomid);
    await link.bind(remotePort, this.selfDomid);
    const local = this.nextPort++;
    this.bound.set(local, { link, remotePort, masked: false, latched: false });
    if (!this.listening.has(link)) {
      this.listening.add(link);
      link.onNotify((guestPort) => {
        for (const [port, b] of this.bound) if (b.link === link && b.remotePort === guestPort) this.arrive(port);
      });
    }
    log('bound local port %d to domain %d port %d', local, remoteDomid, remotePort);
    return local;
  }

  unbind(localPort: number): void {
    const b = this.bound.get(localPort);
    if (!b) return;
    this.bound.delete(localPort);
    b.link.unbind(b.remotePort);
  }

  notify(localPort: number): void {
    const b = this.bound.get(localPort);
    if (!b) throw Object.assign(new Error(`event channel port ${localPort} is not bound`), { code: 'ENOTCONN' });
    b.link.notify(b.remotePort);
  }

  unmask(localPort: number): void {
    const b = this.bound.get(localPort);
    if (!b) return;
    b.masked = false;
    b.link.unmask?.(b.remotePort);
    if (b.latched) {
      b.latched = false;
      this.arrive(localPort);
    }
  }

  onPending(handler: (ports: readonly number[], overflow: boolean) => void): void {
    this.handler = handler;
  }

  /** Tests: behave as if the kernel queue overflowed (EFBIG, then IOCTL_EVTCHN_RESET). */
  simulateOverflow(): void {
    this.overflowPending = true;
    this.schedule();
  }

  /** Local ports currently bound (tests). */
  get boundPorts(): number[] {
    return [...this.bound.keys()];
  }

  private arrive(port: number): void {
    const b = this.bound.get(port);
    if (!b) return;
    if (b.masked) {
      b.latched = true;
      return;
    }
    b.masked = true;
    this.queued.push(port);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.closed) return;
      const ports = this.queued;
      const overflow = this.overflowPending;
      this.queued = [];
      this.overflowPending = false;
      if (ports.length || overflow) this.handler?.(ports, overflow);
    });
  }

  close(): void {
    for (const port of [...this.bound.keys()]) this.unbind(port);
    this.closed = true;
  }
}
