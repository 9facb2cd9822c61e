// What a device needs from the hypervisor besides XenStore: the composition root (cli/platform.ts)
// picks the Linux implementation or the simulator; nothing above `xen` imports either directly.
import type { EventChannels } from './evtchn';
import type { GrantTable } from './grant-table';

export interface Platform {
  readonly name: 'linux' | 'sim';
  readonly evtchn: EventChannels;
  readonly grants: GrantTable;
  close(): void;
}

/** A platform chosen by the composition root, opened only where it is used. */
export interface PlatformLoader {
  readonly name: Platform['name'];
  load(): Promise<Platform>;
}
