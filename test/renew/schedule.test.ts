// The renewal schedule and backoff, in-process: no KDC, a fixed clock and fixed randomness.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BASE_RETRY_MS, MIN_DELAY_MS, kickedAttemptAt, renewDelay, retryDelay } from '../../src/renew/schedule';

const T = { marginMs: 5 * 60_000, retryCapMs: 5 * 60_000 };
const H = 3600_000;

test('renews at half the remaining lifetime when that is before the margin', () => {
  assert.is(renewDelay(0, 10 * H, T), 5 * H);
});

test('never later than the margin before expiry', () => {
  // 8 min left, margin 5 min: half would be 4 min left (inside the margin); 3 min is the latest.
  assert.is(renewDelay(0, 8 * 60_000, T), 3 * 60_000);
});

test('a margin longer than the lifetime falls back to half, never to a busy loop', () => {
  assert.is(renewDelay(0, 12_000, T), 6_000);
  assert.is(renewDelay(0, 1_000, T), MIN_DELAY_MS);
  assert.is(renewDelay(0, -60_000, T), MIN_DELAY_MS, 'already expired: retry soon, not in a tight loop');
});

test('unknown expiry waits the retry cap', () => {
  assert.is(renewDelay(0, undefined, T), T.retryCapMs);
});

test('transient failures back off exponentially with jitter up to the cap', () => {
  const cap = { marginMs: 0, retryCapMs: 16_000 };
  const hi = (n: number) => retryDelay(n, false, cap, () => 1);
  const lo = (n: number) => retryDelay(n, false, cap, () => 0);
  assert.equal([1, 2, 3, 4, 5, 6, 20].map(hi), [1000, 2000, 4000, 8000, 16000, 16000, 16000]);
  assert.equal([1, 2, 3, 4, 5].map(lo), [1000, 1000, 2000, 4000, 8000], 'jitter: never below half the step, never below 1 s');
  for (let n = 1; n < 40; n++) {
    const d = retryDelay(n, false, cap, Math.random);
    assert.ok(d >= MIN_DELAY_MS && d <= cap.retryCapMs, `failure ${n}: ${d}`);
  }
  assert.is(BASE_RETRY_MS, 1000);
});

test('permanent failures retry slowly from the first one', () => {
  assert.is(retryDelay(1, true, T, () => 1), T.retryCapMs);
  assert.is(retryDelay(1, true, T, () => 0), T.retryCapMs / 2);
  assert.ok(retryDelay(1, true, T, () => 0) > retryDelay(1, false, T, () => 1));
});

test('a tiny cap still never retries faster than once a second', () => {
  assert.is(retryDelay(1, false, { marginMs: 0, retryCapMs: 10 }, () => 0), MIN_DELAY_MS);
});

test('SIGALRM kick: moves a healthy schedule to now, coalesced, never inside the backoff', () => {
  // Healthy, last attempt long ago: now.
  assert.is(kickedAttemptAt(100_000, 500_000, 10_000, 0), 100_000);
  // Healthy, last attempt 200 ms ago: one second after it, not at once again.
  assert.is(kickedAttemptAt(100_000, 500_000, 99_800, 0), 100_800);
  // Already due sooner: unchanged.
  assert.is(kickedAttemptAt(100_000, 100_500, 99_800, 0), 100_500);
  // Failing: the backoff stands.
  assert.is(kickedAttemptAt(100_000, 130_000, 90_000, 3), 130_000);
  // Never attempted: now.
  assert.is(kickedAttemptAt(5, 5, undefined, 0), 5);
});

test.run();
