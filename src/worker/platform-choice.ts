// --platform auto|linux|sim: which event channels and grant tables a device uses (DESIGN
// contracts, Platform). XenStore is always the real client. The platform modules are loaded only
// when a device connects, so the supervisor and the tools never load the native addon.
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

interface PlatformModule {
  createLinuxPlatform?: () => Platform;
  createSimPlatform?: (env: NodeJS.ProcessEnv) => Platform;
}

/** Loads the platform implementation. The modules come from other branches (xen/linux from the
 * linux helper, the cross-process sim from core); until they are merged this says so. */
export async function loadPlatform(name: PlatformName, env: NodeJS.ProcessEnv): Promise<Platform> {
  const spec = name === 'linux' ? '../xen/linux/platform' : '../sim/process-platform';
  let mod: PlatformModule;
  try {
    // A computed specifier: the module is not on this branch yet (see the report).
    mod = (await import(spec)) as PlatformModule;
  } catch (e) {
    throw new Error(`the ${name} platform is not available in this build (${(e as Error).message.split('\n')[0]})`);
  }
  if (name === 'linux' && mod.createLinuxPlatform) return mod.createLinuxPlatform();
  if (name === 'sim' && mod.createSimPlatform) return mod.createSimPlatform(env);
  throw new Error(`the ${name} platform module has no create function`);
}
