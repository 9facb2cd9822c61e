// Small helpers for the sim tests.
import * as assert from 'uvu/assert';

export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

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
