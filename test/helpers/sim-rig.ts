// One simulated guest's vbd served by the real Device state machine, in this process: the
// in-memory XenStore, the libxl toolstack, the simulated hypervisor, a real image file in a temp
// dir and the simulated blkfront. The one fixture of the sim and device tests.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BlockFile, IoCallback } from '../../src/engine/block-file';
import { Image } from '../../src/image/image';
import { SimBlkfront, type BlkfrontOptions } from '../../src/sim/blkfront';
import { SimHypervisor, type SimPlatform } from '../../src/sim/platform';
import type { SimGuest } from '../../src/sim/guest';
import { Toolstack, type VbdConfig, type VbdPaths } from '../../src/sim/toolstack';
import { SimStore } from '../../src/sim/xenstore';
import { type ClaimLimits, claimDevice } from '../../src/worker/device/claim';
import { Device, type DeviceConfig, type DeviceImage } from '../../src/worker/device/device';
import type { XenStore } from '../../src/xen/xenstore';
import { pattern } from './pattern';

export { pattern };

export interface Rig {
  store: SimStore;
  dom0: XenStore;
  hv: SimHypervisor;
  platform: SimPlatform;
  toolstack: Toolstack;
  guest: SimGuest;
  paths: VbdPaths;
  imagePath: string;
  device: Device;
  front: SimBlkfront;
  warnings: string[];
  files: FileControl[];
  dir: string;
  /** A new blkfront for the same vbd (after the first one closed). */
  newFront(opts?: Partial<Omit<BlkfrontOptions, 'xs' | 'guest' | 'devid'>>): SimBlkfront;
  close(): Promise<void>;
  /** Frees the simulator without the guest's goodbye (after the device is gone). */
  dispose(): void;
}

/** Lets a test slow down or break the image under a device. */
export interface FileControl {
  fsyncs: number;
  /** When set, fsync fails with this code. */
  fsyncError?: string;
  /** When true, fsync never calls back. */
  fsyncHang: boolean;
  /** When true, reads never call back. */
  readHang: boolean;
}

export function controlled(img: Image, ctl: FileControl): DeviceImage {
  const f: DeviceImage & BlockFile = {
    path: img.path,
    size: img.size,
    readOnly: img.readOnly,
    canDiscard: img.canDiscard,
    read: (b: Uint8Array, o: number, cb: IoCallback) => {
      if (!ctl.readHang) img.read(b, o, cb);
    },
    readv: (v: Uint8Array[], o: number, cb: IoCallback) => {
      if (!ctl.readHang) img.readv(v, o, cb);
    },
    write: (b: Uint8Array, o: number, cb: IoCallback) => img.write(b, o, cb),
    fsync: (cb: IoCallback) => {
      ctl.fsyncs++;
      if (ctl.fsyncHang) return;
      const code = ctl.fsyncError;
      if (code) return setImmediate(() => cb(Object.assign(new Error(code), { code })));
      img.fsync(cb);
    },
    discard: (o: number, l: number, cb: IoCallback) => img.discard(o, l, cb),
    close: () => img.close(),
  };
  return f;
}

export interface RigOptions {
  sizeMiB?: number;
  domid?: number;
  vbd?: Partial<VbdConfig>;
  device?: DeviceConfig;
  front?: Partial<Omit<BlkfrontOptions, 'xs' | 'guest' | 'devid'>>;
  /** Write hotplug-status=connected (default true). */
  hotplug?: boolean;
  /** Run the blkfront handshake (default true). */
  connect?: boolean;
  /** Limits written at claim, as the supervisor would (also given to the device). */
  limits?: Partial<ClaimLimits>;
  /** Guest memory in pages (default 4096). */
  guestPages?: number;
  /** Share the store/hypervisor of another rig (a second device). */
  with?: Rig;
}

export async function rig(opts: RigOptions = {}): Promise<Rig> {
  const base = opts.with;
  // tmpfs when there is one: fsync there costs nothing, so the tests time the logic, not a disk
  // shared with other work.
  const tmp = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const dir = base?.dir ?? fs.mkdtempSync(path.join(tmp, 'afsfile-dev-'));
  const domid = opts.domid ?? 5;
  const imagePath = path.join(dir, `disk-${domid}-${opts.vbd?.vdev ?? 'xvda'}.img`);
  fs.writeFileSync(imagePath, '');
  fs.truncateSync(imagePath, (opts.sizeMiB ?? 8) * 1024 * 1024);
  const store = base?.store ?? new SimStore();
  const dom0 = store.connect(0);
  const toolstack = new Toolstack(dom0);
  const hv = base?.hv ?? new SimHypervisor();
  if (!hv.guests.has(domid)) await toolstack.createDomain(domid);
  const guest = hv.guests.get(domid) ?? hv.addGuest({ domid, pages: opts.guestPages ?? 4096 });
  const paths = await toolstack.addVbd({ domid, target: imagePath, ...opts.vbd });
  await claimDevice(dom0, paths.backend, opts.limits);
  const platform = base?.platform ?? hv.platform();
  const warnings: string[] = [];
  const files: FileControl[] = [];
  const device = new Device(dom0, platform, paths.backend, {
    engine: { fsyncIntervalMs: 0 },
    limits: opts.limits,
    warn: (m) => warnings.push(m),
    openImage: (p, ro) => {
      const ctl: FileControl = { fsyncs: 0, fsyncHang: false, readHang: false };
      files.push(ctl);
      return controlled(Image.open(p, { readOnly: ro }), ctl);
    },
    ...opts.device,
  });
  await device.start();
  if (opts.hotplug ?? true) await toolstack.hotplugConnected(paths);
  const newFront = (f = opts.front) =>
    new SimBlkfront({ xs: store.connect(domid), guest, devid: paths.devid, timeoutMs: 3000, ...f });
  const front = newFront();
  if (opts.connect ?? true) await front.connect();
  const r: Rig = {
    store, dom0, hv, platform, toolstack, guest, paths, imagePath, device, front, warnings, files, dir, newFront,
    close: async () => {
      await front.close().catch(() => undefined);
      await device.quiesce().catch(() => undefined);
      r.dispose();
    },
    dispose: () => {
      if (base) return;
      platform.close();
      hv.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return r;
}

