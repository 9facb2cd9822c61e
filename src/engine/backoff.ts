// The engine's one back-off for transient file errors (a request's I/O step, durability's
// recovery): the first retry after RETRY_FIRST_MS, each next one after twice as long, at most
// RETRY_MAX_MS; callers cut the last wait to what is left of hold-timeout.
export const RETRY_FIRST_MS = 50;
export const RETRY_MAX_MS = 2000;

/** The wait before the next retry, after one of `prevMs` (0: none yet). */
export function nextRetryDelay(prevMs: number): number {
  return prevMs <= 0 ? RETRY_FIRST_MS : Math.min(prevMs * 2, RETRY_MAX_MS);
}
