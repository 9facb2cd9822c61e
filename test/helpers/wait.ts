// Polling waits with a deadline and a message that says what never happened.
import { setTimeout as sleep } from 'node:timers/promises';

/** Polls probe until it gives something other than false/undefined (returned), or throws after ms. */
export async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}
