// The Linux platform (xen/linux): imported lazily by the composition root only.
export { createLinuxPlatform, type LinuxPlatformOptions } from './platform';
export { linuxPlatformProblem, MISSING_DEVICE_HINT } from './errors';
export { LinuxEventChannels, openEventChannels } from './evtchn';
export { LinuxGrantTable, openGrantTable } from './grant-table';
