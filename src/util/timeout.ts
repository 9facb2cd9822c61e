// Bounding a wait without cancelling the work behind it.

/**
 * Settles as p does if p settles within ms; otherwise with onTimeout()'s value (or its throw).
 * p keeps running either way; the timer is cleared as soon as either side wins.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => T): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      try {
        resolve(onTimeout());
      } catch (err) {
        reject(err as Error);
      }
    }, ms);
    p.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (err: unknown) => (clearTimeout(timer), reject(err as Error)),
    );
  });
}
