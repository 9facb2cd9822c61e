// What the hotplug script waits for (DESIGN contracts, hotplug <-> worker 2): afsfile-status
// `opened`, or `error` with afsfile-error (`busy`: the image is in use by another device, which
// the script passes on to xl as hotplug-status=busy). Written by the supervisor when it opens the image and
// again by the device process (a restart, a later failure). Guests can read the backend dir:
// messages name the image and the cause, never principals, cache paths or tokens.
import type { XenStore } from '../../xen/xenstore';

export const AFSFILE_STATUS = 'afsfile-status';
export const AFSFILE_ERROR = 'afsfile-error';
/** The config label of the identity the device is served with (`host`: renew's): never a principal.
 * Written with the first `opened`; a restarted worker adopts the device with it. */
export const AFSFILE_IDENTITY = 'afsfile-identity';
/** XenStore values are small; a message longer than this is cut. */
const MAX_MESSAGE = 1000;

/** `opened` (and no stale error), unless the backend dir was removed meanwhile; the supervisor
 * also says which identity serves the device. */
export async function reportOpened(xs: XenStore, backend: string, identity?: string): Promise<void> {
  await xs.transaction(async (tx) => {
    if ((await tx.tryRead(`${backend}/state`)) === undefined) return;
    if (identity !== undefined) await tx.write(`${backend}/${AFSFILE_IDENTITY}`, identity);
    await tx.write(`${backend}/${AFSFILE_STATUS}`, 'opened');
    await tx.rm(`${backend}/${AFSFILE_ERROR}`);
  });
}

/** `error` (or `busy`) with its message, unless the backend dir was removed meanwhile. */
export async function reportError(xs: XenStore, backend: string, message: string, status: 'error' | 'busy' = 'error'): Promise<void> {
  await xs.transaction(async (tx) => {
    if ((await tx.tryRead(`${backend}/state`)) === undefined) return;
    await tx.write(`${backend}/${AFSFILE_STATUS}`, status);
    await tx.write(`${backend}/${AFSFILE_ERROR}`, message.slice(0, MAX_MESSAGE));
  });
}
