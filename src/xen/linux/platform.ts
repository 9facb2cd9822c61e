// The Linux platform: event channels over /dev/xen/evtchn, grant tables over /dev/xen/gntdev.
import type { Platform } from '../platform';
import { openEventChannels, type LinuxEventChannels } from './evtchn';
import { openGrantTable, type LinuxGrantTable } from './grant-table';
import { EVTCHN_DEVICE, GNTDEV_DEVICE } from './uapi';

export interface LinuxPlatformOptions {
  /** Device paths; tests point them elsewhere. */
  evtchnPath?: string;
  gntdevPath?: string;
}

/** Opens both devices (and probes grant copy); throws one clear error when either is unusable. */
export function createLinuxPlatform(opts: LinuxPlatformOptions = {}): Platform {
  const evtchn: LinuxEventChannels = openEventChannels(opts.evtchnPath ?? EVTCHN_DEVICE);
  let grants: LinuxGrantTable;
  try {
    grants = openGrantTable(opts.gntdevPath ?? GNTDEV_DEVICE);
  } catch (err) {
    evtchn.close();
    throw err;
  }
  let closed = false;
  return {
    name: 'linux',
    evtchn,
    grants,
    close() {
      if (closed) return;
      closed = true;
      // Unmap the rings before the ports go: the frontend sees the backend leave in that order.
      grants.close();
      evtchn.close();
    },
  };
}
