// One budget of grant-copy buffer bytes for all the devices of a process (a device host serves
// many disks): each device keeps its own limit (max-inflight) and together they hold no more
// than this, so a process's buffer memory is bounded by the process, not by its number of
// disks. A device that finds the budget spent leaves its requests waiting (counted as memory
// stalls, as for its own limit) and is woken when another device gives memory back.

export class PoolBudget {
  private used = 0;
  /** Devices waiting for memory, woken in the order they began to wait. */
  private readonly waiting: Array<() => void> = [];

  constructor(readonly bytes: number) {}

  get bytesInUse(): number {
    return this.used;
  }

  /** Takes `n` bytes if they fit; one request always fits when nothing is taken (progress
   * for a request larger than the budget). */
  take(n: number): boolean {
    if (this.used > 0 && this.used + n > this.bytes) return false;
    this.used += n;
    return true;
  }

  /** Counts `n` bytes taken whether they fit or not (what was admitted earlier, by fits()). */
  charge(n: number): void {
    this.used += n;
  }

  /** Whether `n` more bytes would fit now (without taking them). */
  fits(n: number): boolean {
    return this.used === 0 || this.used + n <= this.bytes;
  }

  give(n: number): void {
    this.used -= n;
    if (this.waiting.length === 0) return;
    // Each woken device tries again in its next pump; those that still find it spent wait again.
    for (const wake of this.waiting.splice(0)) wake();
  }

  /** Calls `wake` once after the next give. */
  wait(wake: () => void): void {
    if (!this.waiting.includes(wake)) this.waiting.push(wake);
  }
}
