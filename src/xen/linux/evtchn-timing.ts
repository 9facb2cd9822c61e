// Where a queue-depth-1 request's time goes, seen from the event channel alone (DEBUG=
// afsfile:timing; nothing is measured otherwise). A wake-up is the guest's kick reaching JS; the
// next notify is our response. So wake → notify is this process (ring, engine, file I/O, grant
// copies) and notify → next wake is everything else: the guest's completion and next
// submission, Xen, and the delivery of the event into the event loop (the fd watch).
// Within wake → notify, the grant copies (LinuxGrantTable.copy reports them) split it further:
// wake → first copy (for a read: the engine and the file read), the copies themselves, and last
// copy → notify (for a write: the file write). One device per process, so one instance.
import createDebug from 'debug';
import { performance } from 'node:perf_hooks';

const debug = createDebug('afsfile:timing');
/** Samples per summary line (at most). */
export const WINDOW = 256;

type Log = ((format: string, ...args: unknown[]) => void) & { enabled: boolean };

export class RoundTripTiming {
  readonly enabled: boolean;
  private wokeAt = 0;
  private notifiedAt = 0;
  private readonly backend = new Float64Array(WINDOW);
  private readonly outside = new Float64Array(WINDOW);
  private nb = 0;
  private no = 0;
  // Grant copies between a wake and its notify.
  private copyFrom = 0;
  private firstCopyAt = 0;
  private lastCopyEnd = 0;
  private copying = 0;
  private readonly beforeCopy = new Float64Array(WINDOW);
  private readonly inCopy = new Float64Array(WINDOW);
  private readonly afterCopy = new Float64Array(WINDOW);
  private nc = 0;

  constructor(
    public label: string,
    private readonly log: Log = debug,
    private readonly clock = () => performance.now(),
  ) {
    this.enabled = Boolean(log.enabled); // debug's getter says undefined before any enable()
  }

  wake(): void {
    const now = this.clock();
    if (this.notifiedAt > 0) {
      this.outside[this.no++] = now - this.notifiedAt;
      this.notifiedAt = 0;
      if (this.no === WINDOW) this.flush();
    }
    this.wokeAt = now;
    this.firstCopyAt = 0;
    this.copying = 0;
  }

  copyStart(): void {
    if (this.wokeAt === 0) return;
    this.copyFrom = this.clock();
    if (this.firstCopyAt === 0) this.firstCopyAt = this.copyFrom;
  }

  copyEnd(): void {
    if (this.wokeAt === 0 || this.copyFrom === 0) return;
    this.lastCopyEnd = this.clock();
    this.copying += this.lastCopyEnd - this.copyFrom;
    this.copyFrom = 0;
  }

  notify(): void {
    const now = this.clock();
    if (this.wokeAt > 0) {
      this.backend[this.nb++] = now - this.wokeAt;
      if (this.firstCopyAt > 0 && this.nc < WINDOW) {
        this.beforeCopy[this.nc] = this.firstCopyAt - this.wokeAt;
        this.inCopy[this.nc] = this.copying;
        this.afterCopy[this.nc++] = now - this.lastCopyEnd;
      }
      this.wokeAt = 0;
      if (this.nb === WINDOW) this.flush();
    }
    this.notifiedAt = now;
  }

  /** The last, partial window (the device is going away). */
  end(): void {
    if (this.nb > 0 || this.no > 0) this.flush();
  }

  private flush(): void {
    this.log('%s: wake->notify (this process) %s; notify->next wake (guest, Xen, delivery) %s',
      this.label, summary(this.backend.subarray(0, this.nb)), summary(this.outside.subarray(0, this.no)));
    if (this.nc > 0) {
      this.log(
        '%s: of which wake->first grant copy %s; grant copies %s; last copy->notify %s',
        this.label,
        summary(this.beforeCopy.subarray(0, this.nc)),
        summary(this.inCopy.subarray(0, this.nc)),
        summary(this.afterCopy.subarray(0, this.nc)),
      );
    }
    this.nb = 0;
    this.no = 0;
    this.nc = 0;
  }
}

function summary(xs: Float64Array): string {
  if (xs.length === 0) return 'no samples';
  const s = Float64Array.from(xs).sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(s.length * q))].toFixed(2);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return `n=${s.length} mean ${mean.toFixed(2)} p10 ${at(0.1)} p50 ${at(0.5)} p90 ${at(0.9)} ms`;
}

let shared: RoundTripTiming | undefined;

/** The process's instance (evtchn and the grant table report into the same round trips). */
export function processTiming(): RoundTripTiming {
  shared ??= new RoundTripTiming('evtchn');
  return shared;
}
