// "Run again if asked while running": watch events only say "look again", so a request that
// arrives during a pass asks for exactly one more pass after it, however many arrived.

export interface RerunOptions {
  /** Checked after each pass: true ends the run even when another pass was asked for. */
  readonly stop?: () => boolean;
  /** A pass that throws ends the run; the error comes here. */
  readonly onError?: (err: unknown) => void;
  /** Called when a run ends, in the same tick as `running` turns false. */
  readonly onIdle?: () => void;
}

export class Rerun {
  private current: Promise<void> | undefined;
  private again = false;

  constructor(private readonly pass: () => Promise<void>, private readonly opts: RerunOptions = {}) {}

  get running(): boolean {
    return this.current !== undefined;
  }

  /** Starts a pass, or asks the running one for one more after it. */
  request(): void {
    if (this.current) {
      this.again = true;
      return;
    }
    this.current = this.run();
  }

  /** Resolves when the current run (if any) has ended. Never rejects. */
  idle(): Promise<void> {
    return this.current ?? Promise.resolve();
  }

  private async run(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.pass();
      } while (this.again && !this.opts.stop?.());
    } catch (err) {
      this.opts.onError?.(err);
    } finally {
      this.current = undefined;
      this.opts.onIdle?.();
    }
  }
}
