// The guest half of the simulated hypervisor: the guest's memory pages, its grant table and
// its event-channel ports. A backend attaches in-process (link()) or from another process
// through the unix socket this guest listens on (listen(), DESIGN.md "Platform").
//
// Event channels follow Xen: the guest allocates an unbound port for a remote domain; the
// backend binds it interdomain; notifies then go both ways. When the backend side goes away
// (its process killed, its link closed) the guest's port reverts to unbound, as Xen's
// evtchn_close does, so a new backend can bind it again and re-attach to the live ring.
import * as fs from 'node:fs';
import * as net from 'node:net';
import createDebug from 'debug';
import { GuestMemoryView } from './guest-memory';
import { FIRST_GREF } from './guest-memory';
import { FrameReader, Msg, frame, memoryPath, socketPath } from './wire';

const log = createDebug('afsfile:sim:guest');

export interface SimGuestOptions {
  readonly domid: number;
  /** Guest memory in 4 KiB pages (default 8192 = 32 MiB; a sparse tmpfs file). */
  readonly pages?: number;
  readonly maxGrants?: number;
  /** Share with other processes: memory at <dir>/dom<domid>.mem, socket <dir>/dom<domid>.sock. */
  readonly dir?: string;
}

/** The guest as a backend sees it (implemented in-process and over the socket). */
export interface GuestLink {
  readonly domid: number;
  readonly memory: GuestMemoryView;
  /** Binds the guest's unbound port; rejects EINVAL when it is not unbound for backendDomid. */
  bind(guestPort: number, backendDomid: number): Promise<void>;
  unbind(guestPort: number): void;
  /** backend → guest. */
  notify(guestPort: number): void;
  /** guest → backend events, by guest port. */
  onNotify(handler: (guestPort: number) => void): void;
  /** The backend unmasked its end of the port (wire.ts Msg.UNMASK); absent: never masked there. */
  unmask?(guestPort: number): void;
  readonly closed: boolean;
  close(): void;
}

/** What the guest knows of an attached backend. */
interface BackendEnd {
  deliver(guestPort: number): void;
}

interface Port {
  readonly remoteDomid: number;
  bound: BackendEnd | undefined;
  handler: (() => void) | undefined;
  scheduled: boolean;
}

export class SimGuest {
  readonly domid: number;
  readonly memory: GuestMemoryView;
  private readonly used: Uint8Array;
  private nextGref = FIRST_GREF;
  private readonly freeGrefs: number[] = [];
  private readonly ports = new Map<number, Port>();
  private nextPort = 1;
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  /** Notifies sent to the backend, per port (tests assert on it). */
  readonly notifiesSent = new Map<number, number>();

  constructor(readonly opts: SimGuestOptions) {
    this.domid = opts.domid;
    const file = opts.dir ? memoryPath(opts.dir, opts.domid) : undefined;
    if (file) fs.rmSync(file, { force: true });
    this.memory = GuestMemoryView.create(opts.domid, opts.pages ?? 8192, opts.maxGrants ?? 16384, file);
    this.used = new Uint8Array(this.memory.layout.nrPages);
  }

  // ---- memory ----

  /** `count` consecutive free pages (rings need them consecutive); throws when memory is full. */
  allocPages(count = 1): number {
    let run = 0;
    for (let i = 0; i < this.used.length; i++) {
      run = this.used[i] ? 0 : run + 1;
      if (run === count) {
        const first = i - count + 1;
        this.used.fill(1, first, first + count);
        return first;
      }
    }
    throw new Error(`simulated guest ${this.domid}: out of memory (${count} consecutive pages)`);
  }

  freePages(first: number, count = 1): void {
    this.used.fill(0, first, first + count);
  }

  page(n: number): Uint8Array {
    return this.memory.page(n);
  }

  // ---- grants ----

  /** gnttab_grant_foreign_access: lets `grantee` (the backend, dom0) access the page. */
  grant(page: number, readonly: boolean, grantee = 0): number {
    const gref = this.freeGrefs.pop() ?? this.nextGref++;
    if (gref >= this.memory.layout.maxGrants) throw new Error(`simulated guest ${this.domid}: grant table full`);
    this.memory.setGrant(gref, grantee, page, readonly);
    return gref;
  }

  /** gnttab_end_foreign_access: the backend can no longer use gref. */
  endGrant(gref: number): void {
    this.memory.clearGrant(gref);
    this.freeGrefs.push(gref);
  }

  // ---- event channels ----

  /** EVTCHNOP_alloc_unbound for remoteDomid; returns the guest-local port. */
  allocUnboundPort(remoteDomid = 0): number {
    const port = this.nextPort++;
    this.ports.set(port, { remoteDomid, bound: undefined, handler: undefined, scheduled: false });
    return port;
  }

  /** The guest's interrupt handler for port; runs on the event loop, coalesced like an irq. */
  onEvent(port: number, handler: () => void): void {
    const p = this.ports.get(port);
    if (!p) throw new Error(`simulated guest ${this.domid}: no port ${port}`);
    p.handler = handler;
  }

  /** notify_remote_via_evtchn; dropped (as by Xen) when nobody is bound. */
  notify(port: number): void {
    const p = this.ports.get(port);
    this.notifiesSent.set(port, (this.notifiesSent.get(port) ?? 0) + 1);
    p?.bound?.deliver(port);
  }

  isBound(port: number): boolean {
    return this.ports.get(port)?.bound !== undefined;
  }

  closePort(port: number): void {
    this.ports.delete(port);
  }

  /** An event from the backend `from`; ignored unless that backend is bound to the port. */
  private raise(from: BackendEnd, port: number): void {
    const p = this.ports.get(port);
    if (!p || p.bound !== from || p.scheduled) return;
    p.scheduled = true;
    setImmediate(() => {
      p.scheduled = false;
      p.handler?.();
    });
  }

  private bindFrom(end: BackendEnd, port: number, backendDomid: number): boolean {
    const p = this.ports.get(port);
    if (!p || p.bound || p.remoteDomid !== backendDomid) return false;
    p.bound = end;
    return true;
  }

  private unbindFrom(end: BackendEnd, port?: number): void {
    for (const [n, p] of this.ports) if (p.bound === end && (port === undefined || port === n)) p.bound = undefined;
  }

  // ---- backends ----

  /** An in-process backend's view of this guest. */
  link(): GuestLink {
    let handler: ((port: number) => void) | undefined;
    let closed = false;
    // The backend's event channels only mark the port pending and defer their handler
    // themselves (SimEventChannels.arrive), so delivering in the notifier's stack is safe and
    // saves an event-loop turn per notification.
    const end: BackendEnd = { deliver: (port) => !closed && handler?.(port) };
    return {
      domid: this.domid,
      memory: this.memory,
      bind: (port, backendDomid) =>
        this.bindFrom(end, port, backendDomid) ? Promise.resolve() : Promise.reject(Object.assign(new Error(`guest ${this.domid} port ${port} is not unbound for domain ${backendDomid}`), { code: 'EINVAL' })),
      unbind: (port) => this.unbindFrom(end, port),
      notify: (port) => !closed && this.raise(end, port),
      onNotify: (h) => (handler = h),
      get closed() {
        return closed;
      },
      close: () => {
        closed = true;
        this.unbindFrom(end);
      },
    };
  }

  /** Accepts backend processes on <dir>/dom<domid>.sock (needs opts.dir). */
  listen(): Promise<string> {
    if (!this.opts.dir) throw new Error('SimGuest.listen needs the dir option');
    const file = socketPath(this.opts.dir, this.domid);
    fs.rmSync(file, { force: true });
    this.server = net.createServer((sock) => this.accept(sock));
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(file, () => resolve(file));
    });
  }

  private accept(sock: net.Socket): void {
    this.sockets.add(sock);
    let backendDomid: number | undefined;
    // Ports masked at this backend (a NOTIFY delivered, no UNMASK yet) and those notified
    // meanwhile (the pending bit): see wire.ts Msg.UNMASK.
    const masked = new Set<number>();
    const latched = new Set<number>();
    const send = (port: number): void => {
      masked.add(port);
      sock.write(frame(Msg.NOTIFY, 0, port));
    };
    const end: BackendEnd = {
      deliver: (port) => {
        if (!sock.writable) return;
        if (masked.has(port)) latched.add(port);
        else send(port);
      },
    };
    const reader = new FrameReader((type, a, b) => {
      switch (type) {
        case Msg.HELLO:
          backendDomid = a;
          sock.write(frame(Msg.HELLO_ACK, this.domid));
          break;
        case Msg.BIND:
          sock.write(
            frame(backendDomid !== undefined && this.bindFrom(end, b, backendDomid) ? Msg.BIND_OK : Msg.BIND_ERR, a, 1),
          );
          break;
        case Msg.UNBIND:
          this.unbindFrom(end, b);
          masked.delete(b);
          latched.delete(b);
          break;
        case Msg.UNMASK:
          masked.delete(b);
          if (latched.delete(b) && sock.writable) send(b);
          break;
        case Msg.NOTIFY:
          this.raise(end, b);
          break;
        default:
          log('guest %d: unknown frame %d from a backend; dropping it', this.domid, type);
          sock.destroy();
      }
    });
    sock.on('data', (d: Buffer) => reader.push(d));
    // A backend that dies (or is killed) leaves the guest untouched: its ports become unbound.
    sock.on('close', () => {
      this.sockets.delete(sock);
      this.unbindFrom(end);
      log('guest %d: backend connection closed', this.domid);
    });
    sock.on('error', () => undefined);
  }

  close(): void {
    this.server?.close();
    for (const s of this.sockets) s.destroy();
    if (this.opts.dir) {
      fs.rmSync(socketPath(this.opts.dir, this.domid), { force: true });
      fs.rmSync(memoryPath(this.opts.dir, this.domid), { force: true });
    }
    this.memory.close();
  }
}
