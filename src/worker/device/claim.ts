// Claiming a vbd, as Linux xen-blkback's probe does (drivers/block/xen-blkback/xenbus.c): advertise what the frontend
// may use to set up its rings, then InitWait — before any image is opened, because libxl waits
// only 10 s for state 2 before it runs the hotplug script (DESIGN.md "Hotplug <-> worker" 1).
import { DEFAULT_MAX_INDIRECT_SEGMENTS, MAX_RING_PAGE_ORDER } from '../../blkif/constants';
import { XenbusState } from '../../xen/xenbus-state';
import type { XenStore, XenStoreOps } from '../../xen/xenstore';
import { parseU32 } from './params';

export interface ClaimLimits {
  /** feature-max-indirect-segments (default 256, as blkback). */
  readonly maxIndirectSegments: number;
  /** multi-queue-max-queues (default 4; all queues of a device share one budget). */
  readonly maxQueues: number;
  /** max-ring-page-order (default 4 = XENBUS_MAX_RING_GRANT_ORDER). */
  readonly maxRingPageOrder: number;
}

export const DEFAULT_CLAIM_LIMITS: ClaimLimits = {
  maxIndirectSegments: DEFAULT_MAX_INDIRECT_SEGMENTS,
  maxQueues: 4,
  maxRingPageOrder: MAX_RING_PAGE_ORDER,
};

export function claimLimits(partial: Partial<ClaimLimits> = {}): ClaimLimits {
  const l = { ...DEFAULT_CLAIM_LIMITS, ...partial };
  if (!Number.isInteger(l.maxIndirectSegments) || l.maxIndirectSegments < 0 || l.maxIndirectSegments > 4096)
    throw new RangeError(`max-indirect-segments must be 0..4096, got ${l.maxIndirectSegments}`);
  if (!Number.isInteger(l.maxQueues) || l.maxQueues < 1 || l.maxQueues > 256) throw new RangeError(`max-queues must be 1..256, got ${l.maxQueues}`);
  if (!Number.isInteger(l.maxRingPageOrder) || l.maxRingPageOrder < 0 || l.maxRingPageOrder > MAX_RING_PAGE_ORDER)
    throw new RangeError(`max-ring-page-order must be 0..${MAX_RING_PAGE_ORDER}, got ${l.maxRingPageOrder}`);
  return l;
}

/**
 * Writes the probe-time features and state=2 in one transaction. Does nothing (returns false)
 * when the backend directory is gone or already past Initialising (a restarted supervisor must
 * not knock a connected device back to InitWait).
 */
export async function claimDevice(xs: XenStore, backendPath: string, limits: Partial<ClaimLimits> = {}): Promise<boolean> {
  const l = claimLimits(limits);
  return xs.transaction(async (tx) => {
    const state = await tx.tryRead(`${backendPath}/state`);
    if (state === undefined || state.trim() !== String(XenbusState.Initialising)) return false;
    await tx.write(`${backendPath}/feature-max-indirect-segments`, String(l.maxIndirectSegments));
    await tx.write(`${backendPath}/multi-queue-max-queues`, String(l.maxQueues));
    await tx.write(`${backendPath}/max-ring-page-order`, String(l.maxRingPageOrder));
    await tx.write(`${backendPath}/state`, String(XenbusState.InitWait));
    return true;
  });
}

/**
 * What was advertised in the backend directory (by this worker or an earlier one, maybe with
 * other settings): that is what the frontend set its rings up by, so it stays in force for
 * this device, whatever the config says now. Keys missing or out of range: `fallback`'s.
 */
export async function advertisedLimits(xs: XenStoreOps, backendPath: string, fallback: ClaimLimits): Promise<ClaimLimits> {
  const [ind, queues, order] = await Promise.all([
    xs.tryRead(`${backendPath}/feature-max-indirect-segments`),
    xs.tryRead(`${backendPath}/multi-queue-max-queues`),
    xs.tryRead(`${backendPath}/max-ring-page-order`),
  ]);
  const pick = (text: string | undefined, ok: (n: number) => boolean, dflt: number): number => {
    const n = parseU32(text);
    return n !== undefined && ok(n) ? n : dflt;
  };
  return {
    maxIndirectSegments: pick(ind, (n) => n <= 4096, fallback.maxIndirectSegments),
    maxQueues: pick(queues, (n) => n >= 1 && n <= 256, fallback.maxQueues),
    maxRingPageOrder: pick(order, (n) => n <= MAX_RING_PAGE_ORDER, fallback.maxRingPageOrder),
  };
}
