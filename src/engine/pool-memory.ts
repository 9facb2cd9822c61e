// Gives the grant-copy pool's memory back to the host when the device has been idle a while,
// as tapdisk frees its buffers 3 s after the last request (blktap3 drivers/tapdisk-vbd.c). With
// the pool mapped lazily (GrantTable.allocPool) and pages handed out lowest address first
// (PagePool), residency follows what was in flight; this returns it once nothing is.
//
// No clock reads and no timer work per request: a use bumps a counter; the one timer, armed
// when the device goes idle, releases only if no use happened since it was armed (else it waits
// again), so the release comes between one and two idle periods after the last request.

/** How long a device stays idle before its pool is released (tapdisk's figure). */
export const POOL_RELEASE_IDLE_MS = 3000;

export class PoolMemory {
  private uses = 0;
  private usesAtArm = 0;
  /** Pages may be resident: something used the pool since the last release. */
  private touched = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Releases done (for stats and tests). */
  releases = 0;

  constructor(
    /** Whether anything is in flight now (then the pool is never released). */
    private readonly busy: () => boolean,
    /** Gives every page of the pool back (they read as zero afterwards). */
    private readonly release: () => void,
    private readonly idleMs = POOL_RELEASE_IDLE_MS,
  ) {}

  /** A request took pool memory (data pages or its indirect area). */
  used(): void {
    this.uses++;
    this.touched = true;
  }

  /** Nothing is in flight now. */
  idle(): void {
    if (!this.touched || this.timer || this.closed || this.idleMs <= 0) return;
    this.arm();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    this.usesAtArm = this.uses;
    this.timer = setTimeout(() => this.fire(), this.idleMs);
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    if (this.closed || this.busy()) return; // idle() arms again when the burst ends
    if (this.uses !== this.usesAtArm) return this.arm();
    this.touched = false;
    this.releases++;
    this.release();
  }
}
