// The per-device backend, for the worker child and the demo.
export { claimDevice, claimLimits, DEFAULT_CLAIM_LIMITS, type ClaimLimits } from './claim';
export { DEFAULT_CLOSE_DEADLINE_MS, Device, type DeviceConfig, type DeviceImage, type DeviceStats, openFailure } from './device';
export { AFSFILE_ERROR, AFSFILE_IDENTITY, AFSFILE_STATUS, reportError, reportOpened } from './status';
export { DeviceConfigError, imagePathFromParams, readOnlyFromMode } from './params';
export { portDispatcher } from './ports';
