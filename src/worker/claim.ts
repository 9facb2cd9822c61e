// The claim: on a new backend dir (state=1, online=1, script block-afsfile) write the features
// a frontend may read before the image is open, and InitWait, in one transaction — at once,
// because libxl waits at most 10 s for InitWait before it even runs the hotplug script
// (facts §3.1), and before opening the image (DESIGN contracts, hotplug <-> worker 1).
// Features that depend on the image (sectors, flush, discard) come at connect time.
import { XenbusState, parseState } from '../xen/xenbus-state';
import type { XenStore } from '../xen/xenstore';
import { isOurScript } from './params';

export interface ClaimFeatures {
  readonly maxIndirectSegments: number;
  readonly maxRingPageOrder: number;
  readonly maxQueues: number;
}

export type ClaimResult = 'claimed' | 'not-ours' | 'not-initialising' | 'gone';

export async function claimDevice(xs: XenStore, backend: string, f: ClaimFeatures): Promise<ClaimResult> {
  return xs.transaction(async (tx) => {
    const [script, state, online] = await Promise.all([
      tx.tryRead(`${backend}/script`), tx.tryRead(`${backend}/state`), tx.tryRead(`${backend}/online`),
    ]);
    if (state === undefined) return 'gone';
    if (!isOurScript(script)) return 'not-ours';
    if (parseState(state) !== XenbusState.Initialising || online?.trim() !== '1') return 'not-initialising';
    await Promise.all([
      tx.write(`${backend}/feature-max-indirect-segments`, String(f.maxIndirectSegments)),
      tx.write(`${backend}/max-ring-page-order`, String(f.maxRingPageOrder)),
      tx.write(`${backend}/multi-queue-max-queues`, String(f.maxQueues)),
      tx.write(`${backend}/state`, String(XenbusState.InitWait)),
    ]);
    return 'claimed';
  });
}
