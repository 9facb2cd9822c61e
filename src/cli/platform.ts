// --platform auto|linux|sim and --sim-dir: which event channels and grant tables a device uses
// (DESIGN contracts, Platform). XenStore is always the real client. Chosen here, at the
// composition root; the worker gets a loader and never names an implementation. The loader
// runs only in the device process, so the supervisor and the tools never load the addon.
import * as fs from 'node:fs';
import type { PlatformLoader } from '../xen/platform';
import { FatalError } from './errors';
import type { ParsedArgs } from './parse';

export const XEN_DEV_DIR = '/dev/xen';

/** The platform the worker's arguments ask for (auto: linux when devDir exists). */
export function choosePlatform(args: ParsedArgs, devDir = XEN_DEV_DIR): PlatformLoader {
  const requested = args.string('platform');
  const name = requested === 'linux' || requested === 'sim' ? requested : fs.existsSync(devDir) ? 'linux' : undefined;
  if (name === undefined) {
    throw new FatalError(`${devDir} does not exist, so this is not a Xen dom0 (or xenfs/the xen modules are ` +
      'missing); to run against simulated guests use --platform sim');
  }
  if (name === 'sim') {
    // The option reads AFSFILE_SIM_DIR too; the flag wins.
    const dir = args.optionalString('sim-dir');
    return { name, load: async () => (await import('../sim/platform')).createSimPlatform({ dir }) };
  }
  return {
    name,
    load: async () => {
      const { createLinuxPlatform } = await import('../xen/linux');
      try {
        return createLinuxPlatform();
      } catch (e) {
        throw new FatalError((e as Error).message);
      }
    },
  };
}
