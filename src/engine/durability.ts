// When the image is durable: which writes completed since the last good fsync (generations),
// the periodic fsync while dirty, and flush() with its retries of transient errors.
// Every fsync of the engine goes through here, so "clean" means what the last good fsync covered.
import { performance } from 'node:perf_hooks';
import type { BlockFile, IoCallback } from './block-file';
import type { EngineStats } from './stats';
import { isTransient } from './transient';

export const DEFAULT_FSYNC_INTERVAL_MS = 5000;
/** Back-off of retries after a transient error: doubling from the first to the max. */
export const RETRY_FIRST_MS = 50;
export const RETRY_MAX_MS = 2000;

export interface DurabilityHooks {
  /** Called on every transient error (the worker kicks renew on EACCES). */
  onTransientError?(code: string, op: string): void;
  /** Lines an administrator must see. */
  warn(message: string): void;
}

export class Durability {
  /** Bumped by every completed write; cleanGen is the generation the last good fsync covered. */
  private dirtyGen = 0;
  private cleanGen = 0;
  private periodicRunning = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly file: BlockFile,
    private readonly st: EngineStats,
    private holdMs: number,
    private readonly hooks: DurabilityHooks,
    fsyncIntervalMs: number = DEFAULT_FSYNC_INTERVAL_MS,
  ) {
    this.startTimer(fsyncIntervalMs);
  }

  get dirty(): boolean {
    return this.dirtyGen !== this.cleanGen;
  }

  /** New timings from a reloaded config (SIGHUP). */
  retune(t: { holdTimeoutMs?: number; fsyncIntervalMs?: number }): void {
    if (t.holdTimeoutMs !== undefined) this.holdMs = t.holdTimeoutMs;
    if (t.fsyncIntervalMs !== undefined && !this.closed) this.startTimer(t.fsyncIntervalMs);
  }

  /** A write (or discard) completed: the file is dirty until an fsync started after it succeeds. */
  markDirty(): void {
    this.dirtyGen++;
  }

  /** One fsync; on success, everything that completed before the call is clean. */
  fsync(cb: IoCallback): void {
    const gen = this.dirtyGen;
    this.file.fsync((err) => {
      if (err) this.st.fsyncErrors++;
      else this.fsyncDone(gen);
      cb(err);
    });
  }

  /**
   * fsync with transient retries up to hold-timeout (or `deadlineMs` if given, whichever is
   * shorter). Resolves when the file is clean as of the call; rejects with the last error.
   */
  flush(deadlineMs?: number): Promise<void> {
    const until = performance.now() + Math.min(deadlineMs ?? Infinity, this.holdMs);
    return new Promise((resolve, reject) => {
      let delay = RETRY_FIRST_MS;
      const attempt = () => {
        this.fsync((err) => {
          if (!err) return resolve();
          const transient = isTransient(err.code, 'fsync');
          if (transient && err.code) this.hooks.onTransientError?.(err.code, 'fsync');
          const remaining = until - performance.now();
          if (!transient || remaining <= 0) return reject(err);
          setTimeout(attempt, Math.min(delay, remaining));
          delay = Math.min(delay * 2, RETRY_MAX_MS);
        });
      };
      attempt();
    });
  }

  /** Stops the periodic fsync timer. Does not fsync. */
  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private fsyncDone(genAtStart: number): void {
    this.st.fsyncs++;
    this.st.lastFsync = Date.now();
    // Writes that completed before this fsync started are durable now.
    if (genAtStart - this.cleanGen > 0) this.cleanGen = genAtStart;
  }

  private startTimer(intervalMs: number): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (intervalMs > 0) {
      this.timer = setInterval(() => this.periodic(), intervalMs);
      this.timer.unref();
    }
  }

  private periodic(): void {
    if (!this.dirty || this.periodicRunning) return;
    this.periodicRunning = true;
    this.fsync((err) => {
      this.periodicRunning = false;
      if (err) {
        if (err.code && isTransient(err.code, 'fsync')) this.hooks.onTransientError?.(err.code, 'fsync');
        this.hooks.warn(`periodic fsync failed: ${err.code ?? err.message}; will retry`);
      }
    });
  }
}
