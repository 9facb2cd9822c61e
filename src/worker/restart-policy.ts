// Restarting a crashed device child: quickly at first (the child re-attaches to the live ring),
// then backing off, and giving up after too many crashes in a window so that a device that
// always crashes does not spin the CPU.
export class RestartPolicy {
  private readonly crashes: number[] = [];

  constructor(
    readonly maxCrashes = 5,
    readonly windowMs = 60_000,
    readonly firstDelayMs = 100,
    readonly maxDelayMs = 10_000,
  ) {}

  /** Records a crash; the delay before the next start, or undefined to give up. */
  crashed(now = Date.now()): number | undefined {
    this.crashes.push(now);
    while (this.crashes.length && this.crashes[0]! < now - this.windowMs) this.crashes.shift();
    if (this.crashes.length > this.maxCrashes) return undefined;
    return Math.min(this.maxDelayMs, this.firstDelayMs * 2 ** (this.crashes.length - 1));
  }
}
