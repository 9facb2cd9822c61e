// Lines a guest can cause at will (a frontend cycling through bad states, breaking its ring
// again and again) go through a rate limit, as Linux's printk_ratelimit does for the kernel
// log (lib/ratelimit.c: a burst per interval, then "callbacks suppressed"): the administrator
// sees the first few and how many followed, and a hostile guest cannot flood the journal.

export interface LogThrottleOptions {
  /** Lines let through per interval. */
  readonly burst: number;
  readonly intervalMs: number;
  /** Where lines go. */
  readonly emit: (line: string) => void;
  /** What the suppressed lines were about, for the summary line (e.g. the backend path). */
  readonly subject: string;
  readonly now?: () => number;
}

export class LogThrottle {
  private windowStart = -Infinity;
  private shown = 0;
  private suppressed = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: LogThrottleOptions) {}

  private now(): number {
    return this.o.now ? this.o.now() : performance.now();
  }

  /** Emits the line, or counts it when the burst of this interval is spent. */
  line(text: string): void {
    const t = this.now();
    if (t - this.windowStart >= this.o.intervalMs) {
      this.summarise();
      this.windowStart = t;
      this.shown = 0;
    }
    if (this.shown < this.o.burst) {
      this.shown++;
      this.o.emit(text);
      return;
    }
    this.suppressed++;
    // Said at the end of the interval even when the guest goes quiet (unref'd: never keeps a
    // process alive).
    if (!this.timer) {
      const left = Math.max(0, this.windowStart + this.o.intervalMs - t);
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.summarise();
      }, left);
      this.timer.unref();
    }
  }

  /** Says how many lines were held back, if any (also at close). */
  summarise(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.suppressed === 0) return;
    const n = this.suppressed;
    this.suppressed = 0;
    this.o.emit(`${this.o.subject}: suppressed ${n} more such line${n === 1 ? '' : 's'} ` +
      `(at most ${this.o.burst} per ${Math.round(this.o.intervalMs / 1000)} s)`);
  }
}
