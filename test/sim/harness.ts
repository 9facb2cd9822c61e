// One simulated guest with one vbd, in this process: the in-memory XenStore, the libxl
// toolstack, the simulated hypervisor, an image in a temp dir, a backend and the blkfront.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SimBlkfront, type BlkfrontOptions } from '../../src/sim/blkfront';
import { SimHypervisor } from '../../src/sim/platform';
import { Toolstack, type VbdPaths } from '../../src/sim/toolstack';
import { SimStore } from '../../src/sim/xenstore';
import { claimDevice, type ClaimLimits } from '../../src/worker/device/claim';
import { Device, type DeviceConfig } from '../../src/worker/device/device';
import { pattern } from '../helpers/pattern';

export { pattern };

export interface Harness {
  store: SimStore;
  hv: SimHypervisor;
  paths: VbdPaths;
  image: string;
  device: Device;
  /** Lines the device wanted an administrator to see. */
  warnings: string[];
  front: SimBlkfront;
  toolstack: Toolstack;
  dir: string;
  close(): Promise<void>;
}

export async function harness(opts: {
  sizeMiB?: number;
  domid?: number;
  access?: 'rw' | 'ro';
  limits?: Partial<ClaimLimits>;
  openImage?: DeviceConfig['openImage'];
  front?: Partial<Omit<BlkfrontOptions, 'xs' | 'guest' | 'devid'>>;
  connect?: boolean;
  /** Write hotplug-status=connected as the script would (default true). */
  hotplug?: boolean;
  guestPages?: number;
} = {}): Promise<Harness> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'afsfile-sim-'));
  const file = path.join(dir, 'disk.img');
  fs.writeFileSync(file, '');
  fs.truncateSync(file, (opts.sizeMiB ?? 8) * 1024 * 1024);
  const domid = opts.domid ?? 5;
  const store = new SimStore();
  const dom0 = store.connect(0);
  const toolstack = new Toolstack(dom0);
  await toolstack.createDomain(domid);
  const hv = new SimHypervisor();
  const guest = hv.addGuest({ domid, pages: opts.guestPages ?? 4096 });
  const paths = await toolstack.addVbd({ domid, target: file, access: opts.access ?? 'rw' });
  const platform = hv.platform();
  // What the supervisor does at claim, then the per-device state machine (src/worker/device).
  await claimDevice(dom0, paths.backend, opts.limits);
  const warnings: string[] = [];
  const device = new Device(store.connect(0), platform, paths.backend, { limits: opts.limits, openImage: opts.openImage, engine: { fsyncIntervalMs: 0 }, warn: (m) => warnings.push(m) });
  await device.start();
  if (opts.hotplug ?? true) await toolstack.hotplugConnected(paths);
  const front = new SimBlkfront({ xs: store.connect(domid), guest, devid: paths.devid, ...opts.front });
  if (opts.connect ?? true) await front.connect();
  return {
    store, hv, paths, image: file, device, warnings, front, toolstack, dir,
    close: async () => {
      await front.close();
      await device.quiesce();
      platform.close();
      hv.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

