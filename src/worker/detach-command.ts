// `afsfile detach DOMID DEVID`: detach one device cleanly, as libxl does (xen.git tools/libs/light/libxl_device.c): online=0
// and (unless already Closed) state=5 in one transaction, then wait for the worker's Closed.
// DEVID is the number or a vdev name (xvda).
import { FatalError, UsageError } from '../cli/errors';
import type { ParsedArgs } from '../cli/parse';
import { vdevToDevid } from '../xen/vdev';
import { waitForKey } from '../xen/xenstore-wait';
import { XenbusState, parseState } from '../xen/xenbus-state';
import { connectXenStore } from '../xen/xenstore-client';
import { BACKEND_KINDS, kindRoot } from './backend-path';

/** libxl's LIBXL_DESTROY_TIMEOUT. */
const WAIT_MS = 10_000;

export async function detachMain(args: ParsedArgs, env: NodeJS.ProcessEnv): Promise<number> {
  const [domText, devText, ...extra] = args.positional;
  if (domText === undefined || devText === undefined || extra.length) throw new UsageError('expected DOMID DEVID', 'detach');
  if (!/^\d+$/.test(domText)) throw new UsageError(`DOMID must be a number, got "${domText}"`, 'detach');
  let devid: number;
  try {
    devid = vdevToDevid(devText);
  } catch (e) {
    throw new UsageError((e as Error).message, 'detach');
  }
  let xs;
  try {
    xs = await connectXenStore({ env: env, reconnect: false });
  } catch (e) {
    throw new FatalError((e as Error).message);
  }
  try {
    const selfText = await xs.tryRead('domid');
    const self = selfText !== undefined && /^\d+$/.test(selfText.trim()) ? Number(selfText) : 0;
    let backend: string | undefined;
    for (const kind of BACKEND_KINDS) {
      const p = `${kindRoot(self, kind)}/${domText}/${devid}`;
      if ((await xs.tryRead(`${p}/state`)) !== undefined) { backend = p; break; }
    }
    const asTyped = devText === String(devid) ? devText : `${devText} (devid ${devid})`;
    if (!backend) throw new FatalError(`domain ${domText} has no device ${asTyped} under ${kindRoot(self, 'vbd')} or ${kindRoot(self, 'vbd3')} (see 'afsfile status')`);
    const be = backend;
    await xs.transaction(async (tx) => {
      const state = parseState(await tx.tryRead(`${be}/state`));
      await tx.write(`${be}/online`, '0');
      if (state !== XenbusState.Closed) await tx.write(`${be}/state`, String(XenbusState.Closing));
    });
    const closed = (await waitForKey(xs, `${be}/state`, (v) => parseState(v) === XenbusState.Closed, WAIT_MS)).kind === 'value';
    if (!closed) {
      throw new FatalError(`${be} did not reach Closed within ${WAIT_MS / 1000} s: is the worker running ('afsfile status')? ` +
        'The guest may still hold the disk; xl block-detach --force removes it by force');
    }
    process.stdout.write(`detached ${be} (Closed)\n`);
    return 0;
  } finally {
    xs.close();
  }
}
