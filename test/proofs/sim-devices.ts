// Simulated guests served by a real `afsfile worker --platform sim` (test/helpers/worker-rig.ts):
// each guest in this process (memory in a shared file, event channels over a unix socket), the
// worker and its device processes in theirs. Connects each as libxl, the hotplug script and
// Linux blkfront would.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SimBlkfront } from '../../src/sim/blkfront';
import { SimGuest } from '../../src/sim/guest';
import type { VbdPaths } from '../../src/sim/toolstack';
import { until } from '../helpers/wait';
import type { WorkerRig } from '../helpers/worker-rig';
import { alive } from '../helpers/proc-tree';

export interface SimDevice {
  readonly domid: number;
  readonly image: string;
  readonly vbd: VbdPaths;
  readonly guest: SimGuest;
  readonly front: SimBlkfront;
}

export interface SimDeviceOptions {
  readonly domid: number;
  /** An existing image file (else one of `size` bytes is made in the rig's dir). */
  readonly image?: string;
  readonly size?: number;
  readonly queueDepth?: number;
  readonly maxIndirectSegments?: number;
  readonly guestPages?: number;
  /** How long the attach may take (a hung image never gets there). */
  readonly timeoutMs?: number;
}

export function simDir(rig: WorkerRig): string {
  const d = path.join(rig.dir, 'sim'); // where test/helpers/worker.ts points AFSFILE_SIM_DIR
  fs.mkdirSync(d, { recursive: true });
  return d;
}

/** A guest and its disk, attached through the worker and connected. */
export async function attachSimDevice(rig: WorkerRig, o: SimDeviceOptions): Promise<SimDevice> {
  const image = o.image ?? path.join(rig.dir, `disk-${o.domid}.img`);
  if (!o.image) {
    fs.writeFileSync(image, '');
    fs.truncateSync(image, o.size ?? 16 << 20);
  }
  const guest = new SimGuest({ domid: o.domid, dir: simDir(rig), pages: o.guestPages ?? 4096 });
  await guest.listen();
  await rig.ts.createDomain(o.domid);
  const vbd = await rig.ts.addVbd({ domid: o.domid, target: image });
  const timeoutMs = o.timeoutMs ?? 15_000;
  const front = new SimBlkfront({
    xs: rig.c, guest, devid: vbd.devid, maxIndirectSegments: o.maxIndirectSegments ?? 64,
    queueDepth: o.queueDepth ?? 16, maxQueues: 1, timeoutMs,
  });
  const connecting = front.connect();
  connecting.catch(() => undefined);
  await until(`${vbd.backend} opened`, async () => {
    const s = await rig.c.tryRead(`${vbd.backend}/afsfile-status`);
    if (s === 'error') throw new Error(`${vbd.backend}: ${await rig.c.tryRead(`${vbd.backend}/afsfile-error`)}`);
    return s === 'opened';
  }, timeoutMs);
  await rig.c.write(`${vbd.backend}/hotplug-status`, 'connected'); // what block-afsfile add writes
  await connecting;
  return { domid: o.domid, image, vbd, guest, front };
}

interface WorkerStatus {
  pid: number;
  devices: Array<{ backend: string; childPid?: number; phase?: string; restarts?: number }>;
}

export function workerStatus(rig: WorkerRig): WorkerStatus | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(rig.runDir, 'status/worker.json'), 'utf8')) as WorkerStatus;
  } catch {
    return undefined;
  }
}

/** The device process serving `d` as the supervisor reports it (undefined while restarting). */
export function devicePid(rig: WorkerRig, d: SimDevice): number | undefined {
  const e = workerStatus(rig)?.devices.find((x) => x.backend === d.vbd.backend);
  return e?.phase === 'running' ? e.childPid : undefined;
}

export { alive };

export async function waitDevicePid(rig: WorkerRig, d: SimDevice, not?: number, ms = 20_000): Promise<number> {
  return until(`${d.vbd.backend}: a running device process${not ? ` other than ${not}` : ''}`, () => {
    const p = devicePid(rig, d);
    return p !== undefined && p !== not && alive(p) ? p : undefined;
  }, ms);
}

/** Quantiles of a list of numbers. */
export function quantile(v: readonly number[], f: number): number {
  if (!v.length) return NaN;
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(f * s.length))]!;
}
