// Polling waits with a deadline and a message that says what never happened.
import { setTimeout as sleep } from 'node:timers/promises';

/** Polls probe until it gives something other than false/undefined (returned), or throws after ms. */
type Probe<T> = () => T | undefined | false | Promise<T | undefined | false>;

export async function until<T>(what: string, probe: Probe<T>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}
