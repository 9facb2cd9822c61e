// The simulated hypervisor as a backend's Platform (src/xen/platform.ts).
//
// In one process (the demo, unit tests): `const hv = new SimHypervisor(); const g =
// hv.addGuest({ domid: 5 }); const platform = hv.platform();`.
// Across processes (DESIGN.md "Platform"): the guest process makes `new SimGuest({ domid, dir })`
// and `await guest.listen()`; a backend process (`afsfile worker --platform sim`, finding the
// directory in AFSFILE_SIM_DIR or --sim-dir) uses `createSimPlatform({ dir })`, which attaches
// to guest <domid> on first use through <dir>/dom<domid>.sock and maps <dir>/dom<domid>.mem.
// A backend killed mid-I/O leaves the guest's memory and ring untouched and its ports unbound;
// the next backend process binds them again and re-attaches to the live ring.
import type { Platform } from '../xen/platform';
import { SimEventChannels } from './evtchn';
import { SimGrantTable } from './grant-table';
import type { GuestMemoryView } from './guest-memory';
import { type GuestLink, SimGuest, type SimGuestOptions } from './guest';
import { connectGuest } from './socket-link';
import { SIM_DIR_ENV } from './wire';

export class SimPlatform implements Platform {
  readonly name = 'sim' as const;
  readonly evtchn: SimEventChannels;
  readonly grants: SimGrantTable;
  private readonly links = new Map<number, GuestLink>();
  private readonly connecting = new Map<number, Promise<GuestLink>>();

  constructor(private readonly connectLink: (domid: number) => Promise<GuestLink>, readonly selfDomid = 0) {
    const link = (domid: number) => this.link(domid);
    this.evtchn = new SimEventChannels(link, selfDomid);
    this.grants = new SimGrantTable(async (d) => (await link(d)).memory, (d) => this.attached(d), selfDomid);
  }

  private attached(domid: number): GuestMemoryView | undefined {
    const l = this.links.get(domid);
    return l && !l.closed ? l.memory : undefined;
  }

  /** The link to guest `domid`, made on first use and again after the guest side went away. */
  link(domid: number): Promise<GuestLink> {
    const l = this.links.get(domid);
    if (l && !l.closed) return Promise.resolve(l);
    let p = this.connecting.get(domid);
    if (!p) {
      p = this.connectLink(domid).then(
        (nl) => {
          this.links.set(domid, nl);
          this.connecting.delete(domid);
          return nl;
        },
        (err) => {
          this.connecting.delete(domid);
          throw err;
        },
      );
      this.connecting.set(domid, p);
    }
    return p;
  }

  close(): void {
    this.evtchn.close();
    this.grants.close();
    for (const l of this.links.values()) l.close();
    this.links.clear();
  }
}

/** Guests living in this process. */
export class SimHypervisor {
  readonly guests = new Map<number, SimGuest>();

  addGuest(opts: SimGuestOptions): SimGuest {
    if (this.guests.has(opts.domid)) throw new Error(`domain ${opts.domid} exists`);
    const g = new SimGuest(opts);
    this.guests.set(opts.domid, g);
    return g;
  }

  /** A backend Platform (each call: a new backend, as a new worker process would be). */
  platform(selfDomid = 0): SimPlatform {
    return new SimPlatform(async (domid) => {
      const g = this.guests.get(domid);
      if (!g) throw Object.assign(new Error(`no simulated domain ${domid}`), { code: 'ESRCH' });
      return g.link();
    }, selfDomid);
  }

  close(): void {
    for (const g of this.guests.values()) g.close();
    this.guests.clear();
  }
}

/** The sim platform for a backend process: guests in `dir` (default $AFSFILE_SIM_DIR). */
export function createSimPlatform(opts: { dir?: string; selfDomid?: number } = {}): SimPlatform {
  const dir = opts.dir ?? process.env[SIM_DIR_ENV];
  if (!dir) throw new Error(`--platform sim needs the simulated guests' directory: set ${SIM_DIR_ENV} (or --sim-dir)`);
  return new SimPlatform((domid) => connectGuest(dir, domid, opts.selfDomid ?? 0), opts.selfDomid ?? 0);
}
