// One timer for everything of a process that looks at something periodically (each device's
// check for a token renewal): a device host serves many disks, and a timer per disk would wake
// the process once per disk per period instead of once.
export class SharedTicker {
  private readonly subscribers = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly periodMs: number) {}

  /** Calls fn every period from now on; returns what stops it. */
  add(fn: () => void): () => void {
    this.subscribers.add(fn);
    if (!this.timer) {
      this.timer = setInterval(() => { for (const f of [...this.subscribers]) f(); }, this.periodMs);
      this.timer.unref();
    }
    return () => {
      this.subscribers.delete(fn);
      if (this.subscribers.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }
}
