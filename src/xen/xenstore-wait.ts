// Waiting, by watch and bounded, for a XenStore key to reach a value, noticing the device
// directory going away. One helper for the hotplug script, `afsfile detach` and the toolstack.
import { Rerun } from '../util/rerun';
import type { XenStore } from './xenstore';

export type WaitResult = { kind: 'value'; value: string | undefined } | { kind: 'timeout' } | { kind: 'gone' };

export interface WaitOptions {
  /** Report `gone` when this directory disappears (the device was removed). */
  readonly dir?: string;
}

/**
 * Resolves when accept(value) holds (value undefined = the key is missing), when opts.dir is
 * gone, or after timeoutMs. A read that fails (xenstored restarting) counts as "not yet".
 * opts.dir is watched too, so its removal is noticed at once.
 */
export async function waitForKey(xs: XenStore, key: string, accept: (v: string | undefined) => boolean, timeoutMs: number, opts: WaitOptions = {}): Promise<WaitResult> {
  let finish!: (r: WaitResult) => void;
  let finished = false;
  const done = new Promise<WaitResult>((resolve) => (finish = (r) => ((finished = true), resolve(r))));
  const checker = new Rerun(
    async () => {
      const v = await xs.tryRead(key).catch(() => undefined);
      if (accept(v)) return finish({ kind: 'value', value: v });
      if (v === undefined && opts.dir !== undefined && (await xs.tryRead(opts.dir).catch(() => '')) === undefined)
        finish({ kind: 'gone' });
    },
    { stop: () => finished },
  );
  const timer = setTimeout(() => finish({ kind: 'timeout' }), timeoutMs);
  try {
    const ws = [await xs.watch(key, () => checker.request())];
    // A watch on a key that does not exist yet gets no event when its parent is removed
    // (cxenstored fires the watches of removed nodes only: xenstored_core.c delnode_sub), so
    // the directory itself is watched too.
    if (opts.dir !== undefined && opts.dir !== key) ws.push(await xs.watch(opts.dir, () => checker.request()));
    const result = await done;
    // Not awaited: a caller racing libxl's 40 s (the hotplug script) must not wait for UNWATCH.
    for (const w of ws) void w.close().catch(() => undefined);
    return result;
  } finally {
    clearTimeout(timer);
  }
}
