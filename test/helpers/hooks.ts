// Suite set-up and tear-down whose errors are the ones you see. uvu 0.5 runs `after` hooks in a
// `finally` that ends in `return` (node_modules/uvu/dist/index.js, runner()): an error thrown
// by a `before` hook is dropped (the file says 0 passed and nothing else), and one thrown by an
// `after` hook replaces it (a teardown calling close() on what set-up never made). setup()
// prints its error and fails the process; teardown() runs even then and, after a failed set-up,
// reports its own error in one line instead of throwing it.
import type { Test } from 'uvu';

let setupError: unknown;

function text(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}

export function setup<T>(test: Test<T>, fn: (ctx: T) => unknown): void {
  test.before(async (ctx) => {
    try {
      await fn(ctx);
    } catch (err) {
      setupError = err;
      // uvu sets process.exitCode from the tests' errors only (0 here): fail at exit instead.
      process.once('exit', () => { process.exitCode = 1; });
      process.stderr.write(`set-up failed: ${text(err)}\n`);
      throw err;
    }
  });
}

export function teardown<T>(test: Test<T>, fn: (ctx: T) => unknown): void {
  test.after(async (ctx) => {
    try {
      await fn(ctx);
    } catch (err) {
      if (setupError === undefined) throw err;
      process.stderr.write(
        `tear-down after the failed set-up also failed: ${err instanceof Error ? err.message : String(err)}\n`,
      );
    }
  });
}

/** Runs `make`; if it throws, runs every `undo` (newest first, errors ignored) and rethrows, so
 * a helper that fails half-way leaves no temp dir or daemon behind. */
export async function unwinding<T>(make: (undo: (fn: () => unknown) => void) => Promise<T>): Promise<T> {
  const undos: Array<() => unknown> = [];
  try {
    return await make((fn) => undos.push(fn));
  } catch (err) {
    for (const fn of undos.reverse()) {
      try {
        await fn();
      } catch {
        // the first error is the one to report
      }
    }
    throw err;
  }
}
