// Waiting for a XenStore key to reach a value, bounded, noticing the device going away.
import type { XenStore } from '../xen/xenstore';

export type WaitResult = { kind: 'value'; value: string } | { kind: 'timeout' } | { kind: 'gone' };

export async function waitForKey(xs: XenStore, key: string, accept: (v: string) => boolean, timeoutMs: number, dir: string): Promise<WaitResult> {
  return new Promise<WaitResult>((resolve, reject) => {
    let done = false;
    let busy = false;
    let again = false;
    const finish = (r: WaitResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      void watchP.then((w) => w.close()).catch(() => undefined);
      resolve(r);
    };
    const check = async () => {
      if (busy) { again = true; return; }
      busy = true;
      try {
        do {
          again = false;
          const v = await xs.tryRead(key);
          if (v !== undefined && accept(v)) return finish({ kind: 'value', value: v });
          if (v === undefined && (await xs.tryRead(dir)) === undefined) return finish({ kind: 'gone' });
        } while (again && !done);
      } catch (err) {
        if (!done) { done = true; clearTimeout(timer); reject(err); }
      } finally {
        busy = false;
      }
    };
    const timer = setTimeout(() => finish({ kind: 'timeout' }), timeoutMs);
    // The watch on the directory fires at once (initial event) and for any change below it.
    const watchP = xs.watch(dir, () => void check());
    watchP.catch((err: unknown) => { if (!done) { done = true; clearTimeout(timer); reject(err); } });
  });
}
