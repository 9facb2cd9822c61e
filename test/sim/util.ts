// Small helpers for the sim tests.
import * as assert from 'uvu/assert';

export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Asserts that fn rejects (and, when given, that the message matches). */
export async function rejects(fn: () => Promise<unknown>, match?: RegExp, msg?: string): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    if (match) assert.match((err as Error).message, match, msg);
    return err as Error;
  }
  assert.unreachable(msg ?? 'expected a rejection');
  throw new Error('unreachable');
}

/** Polls cond until true or the timeout passes. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
