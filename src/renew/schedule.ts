// When to try next: pure functions of the clock, the ticket's expiry and the failure count, so
// the whole schedule is unit-tested without a KDC. All times are in milliseconds.

/** Never wait less than this between two attempts, whatever the ticket says (no busy loop). */
export const MIN_DELAY_MS = 1000;
/** The first retry after a transient failure; it doubles from there up to the cap. */
export const BASE_RETRY_MS = 1000;

export interface RenewTiming {
  /** Renew no later than this long before expiry (`--margin`). */
  readonly marginMs: number;
  /** Longest wait between failed attempts (`--retry-cap`); permanent errors wait this long. */
  readonly retryCapMs: number;
}

/**
 * Delay after a success: half of the remaining lifetime (as k5start's "happy ticket" rule
 * renews well ahead), and earlier still if that would fall inside the margin. When the margin
 * is longer than the whole remaining lifetime it cannot be honoured; half the lifetime is then
 * the best there is. Unknown expiry (klist output not understood): retry at the cap.
 */
export function renewDelay(nowMs: number, expiresMs: number | undefined, t: RenewTiming): number {
  if (expiresMs === undefined) return Math.max(MIN_DELAY_MS, t.retryCapMs);
  const remaining = expiresMs - nowMs;
  const half = remaining / 2;
  const beforeMargin = remaining - t.marginMs;
  const delay = beforeMargin > 0 ? Math.min(half, beforeMargin) : half;
  return Math.max(MIN_DELAY_MS, Math.floor(delay));
}

/**
 * Delay after the n-th consecutive failure (n >= 1): exponential from BASE_RETRY_MS up to the
 * cap, with "equal jitter" (between half and all of the step) so that many dom0s restarted
 * together do not hit the KDC in lockstep. Permanent errors (bad keytab, unknown principal)
 * will not fix themselves in seconds: they wait the full cap, jittered the same way.
 * `random` is Math.random in production, a fixed value in tests.
 */
export function retryDelay(failures: number, permanent: boolean, t: RenewTiming, random: () => number): number {
  const cap = Math.max(MIN_DELAY_MS, t.retryCapMs);
  const exp = Math.min(30, Math.max(0, failures - 1));
  const step = permanent ? cap : Math.min(cap, BASE_RETRY_MS * 2 ** exp);
  const r = Math.min(1, Math.max(0, random()));
  return Math.max(MIN_DELAY_MS, Math.floor(step / 2 + (step / 2) * r));
}

/**
 * When a SIGALRM (a kick from the worker) should make the next attempt happen. Kicks are
 * coalesced: while failing, the backoff already decides (a kick never shortens it); after a
 * success, the attempt moves to now, but no sooner than MIN_DELAY_MS after the last one.
 * Returns the new time of the next attempt (possibly unchanged).
 */
export function kickedAttemptAt(nowMs: number, scheduledMs: number, lastAttemptMs: number | undefined, failures: number): number {
  if (failures > 0) return scheduledMs;
  const earliest = lastAttemptMs === undefined ? nowMs : Math.max(nowMs, lastAttemptMs + MIN_DELAY_MS);
  return Math.min(scheduledMs, earliest);
}
