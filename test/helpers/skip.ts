// A test that waits for something (a fix elsewhere, an opt-in environment variable): uvu's
// test.skip, so the run counts it as skipped, plus a "skipped: NAME (WHY)" line that
// test/runner.mjs repeats under the file's result.
import { test } from 'uvu';

type Body = () => Promise<void> | void;

/** test when `run`, else a skip that names the test and why it did not run. */
export function testIf(run: boolean, why: string): (name: string, fn: Body) => void {
  if (run) return (name, fn) => test(name, fn);
  return (name, fn) => {
    process.stdout.write(`skipped: ${name} (${why})\n`);
    test.skip(name, fn);
  };
}
