// One simulated guest with one vbd, in this process: the in-memory XenStore, the libxl
// toolstack, the simulated hypervisor, an image in a temp dir, a backend and the blkfront.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineBackend, type EngineBackendOptions } from '../../src/demo/engine-backend';
import { Image } from '../../src/image/image';
import { SimBlkfront, type BlkfrontOptions } from '../../src/sim/blkfront';
import { SimHypervisor } from '../../src/sim/platform';
import { Toolstack, type VbdPaths } from '../../src/sim/toolstack';
import { SimStore } from '../../src/sim/xenstore';

export interface Harness {
  store: SimStore;
  hv: SimHypervisor;
  paths: VbdPaths;
  image: Image;
  backend: EngineBackend;
  front: SimBlkfront;
  toolstack: Toolstack;
  dir: string;
  close(): Promise<void>;
}

export async function harness(opts: {
  sizeMiB?: number;
  domid?: number;
  access?: 'rw' | 'ro';
  backend?: EngineBackendOptions;
  front?: Partial<Omit<BlkfrontOptions, 'xs' | 'guest' | 'devid'>>;
  connect?: boolean;
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
  const guest = hv.addGuest({ domid, pages: 4096 });
  const paths = await toolstack.addVbd({ domid, target: file, access: opts.access ?? 'rw' });
  const image = Image.open(file, { readOnly: (opts.access ?? 'rw') === 'ro' });
  const platform = hv.platform();
  const backend = new EngineBackend(store.connect(0), platform, paths.backend, image, { engine: { fsyncIntervalMs: 0 }, ...opts.backend });
  await backend.start();
  await toolstack.hotplugConnected(paths);
  const front = new SimBlkfront({ xs: store.connect(domid), guest, devid: paths.devid, ...opts.front });
  if (opts.connect ?? true) await front.connect();
  return {
    store, hv, paths, image, backend, front, toolstack, dir,
    close: async () => {
      await front.close();
      await backend.stop();
      platform.close();
      hv.close();
      image.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Deterministic bytes for (sector, length, seed). */
export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
