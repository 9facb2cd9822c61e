'use strict';
// How test/runner.mjs reads one uvu test file's run (its own module so a test can check it
// against real uvu output without running every test file).
/**
 * uvu's closing lines: "Total" counts the tests that ran (test.skip only adds to "Skipped"),
 * "Passed" those that passed. A file that exits non-zero, or that ran nothing and skipped
 * nothing (it died before uvu's summary), counts as at least one failure.
 */
function outcome({ code, text }) {
  const total = Number(/Total:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const ok = Number(/Passed:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const skip = Number(/Skipped:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const summary = /Total:\s+\d+/.test(text);
  const bad = code === 0 && summary && (total > 0 || skip > 0) ? total - ok : Math.max(1, total - ok);
  return { ok, total, skip, bad };
}

module.exports = { outcome };
