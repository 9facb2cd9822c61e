// When a device process rewrites its status file: on change, never more often than every few
// seconds, and not at all while nothing changes. A file rewrite per second per disk was most of
// an idle dom0's wakeups with many disks (mkdir, open, write, close, rename each time).
//
// changed() is cheap (the engine calls it when it goes busy, the device after each XenStore
// event): it arms one timer if none is armed. When the timer fires the file is written, and the
// timer is armed again only while the device is still active (requests in flight, dirty data
// not yet fsynced, or a figure that moved since the last write), so the last write after a
// burst shows the final counters and then the process sleeps.

/** The longest a busy device's status file lags behind (seconds of `afsfile status`). */
export const STATUS_MIN_INTERVAL_MS = 2000;

export class StatusCadence {
  private timer: NodeJS.Timeout | undefined;
  private lastWrite = -Infinity;
  private lastSignature = '';
  private closed = false;

  constructor(
    /** Writes the file; returns what it wrote minus the time stamp (to tell a change). */
    private readonly write: () => string,
    /** Requests in flight or data not yet durable: the figures will move without an event. */
    private readonly active: () => boolean,
    private readonly minIntervalMs = STATUS_MIN_INTERVAL_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Write now (start, reload, end), whatever the interval. */
  writeNow(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.flush();
  }

  /** Something may have changed: write within the minimum interval. */
  changed(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => this.fire(), Math.max(0, this.lastWrite + this.minIntervalMs - this.now()));
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private fire(): void {
    this.timer = undefined;
    const moved = this.flush();
    if (moved || this.active()) this.changed();
  }

  /** Writes the file; whether anything in it moved since the last write. */
  private flush(): boolean {
    if (this.closed) return false;
    this.lastWrite = this.now();
    const sig = this.write();
    const moved = sig !== this.lastSignature;
    this.lastSignature = sig;
    return moved;
  }
}
