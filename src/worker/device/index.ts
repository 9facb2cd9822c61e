// The per-device backend, for the worker child and the demo.
export { claimDevice, claimLimits, DEFAULT_CLAIM_LIMITS, type ClaimLimits } from './claim';
export { AFSFILE_ERROR, AFSFILE_STATUS, DEFAULT_CLOSE_DEADLINE_MS, Device, type DeviceConfig, type DeviceImage, type DeviceStats } from './device';
export { DeviceConfigError, imagePathFromParams, readOnlyFromMode } from './params';
export { portDispatcher } from './ports';
