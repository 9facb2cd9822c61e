// --platform auto|linux|sim: which event channels and grant tables a device uses (DESIGN
// contracts, Platform). XenStore is always the real client. Loaded only in the device process,
// so the supervisor and the tools never load the native addon.
import * as fs from 'node:fs';
import { FatalError } from '../cli/errors';
import type { Platform } from '../xen/platform';

export type PlatformName = 'linux' | 'sim';

export const XEN_DEV_DIR = '/dev/xen';

export function choosePlatform(requested: string, devDir = XEN_DEV_DIR): PlatformName {
  if (requested === 'linux' || requested === 'sim') return requested;
  if (fs.existsSync(devDir)) return 'linux';
  throw new FatalError(`${devDir} does not exist, so this is not a Xen dom0 (or xenfs/the xen modules are missing); ` +
    'to run against simulated guests use --platform sim');
}

export async function loadPlatform(name: PlatformName, env: NodeJS.ProcessEnv): Promise<Platform> {
  if (name === 'sim') {
    const { createSimPlatform } = await import('../sim/platform');
    return createSimPlatform({ dir: env.AFSFILE_SIM_DIR });
  }
  const { createLinuxPlatform } = await import('../xen/linux');
  try {
    return createLinuxPlatform();
  } catch (e) {
    throw new FatalError((e as Error).message);
  }
}
