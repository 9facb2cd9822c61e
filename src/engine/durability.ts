// When the image is durable, and how nothing acknowledged is lost when an fsync fails.
//
// A failed fsync may have thrown the data away: the OpenAFS cache manager discards the dirty
// chunks when a store fails with EACCES or over quota (afs_StoreAllSegments in
// src/afs/afs_segments.c), kAFS kills the pages on EIO-class errors, and a local file system
// marks failed pages clean (Linux mm/filemap.c filemap_check_errors: the error is reported
// once). The next fsync then succeeds over lost writes. So every write completed since the
// last good fsync is kept here (a copy, bounded per device: when the bound is reached, writes
// wait for an fsync that lets the kept data go). After a failed fsync, no I/O starts; once what
// was in flight has finished: wait, reopen the image, write the kept data again in the order it
// completed, fsync; only then are FLUSHes answered and the kept data released. Retried with
// back-off until hold-timeout; then the waiting FLUSHes fail, the data stays kept, and the next
// fsync starts the same recovery again.
//
// New tokens (refresh()) take the same path without a failed fsync: on AFS the image is opened
// again (kAFS writes back with the keys of the open files, fs/afs/file.c), and what was kept
// since the last good fsync is written again through the new open file before the fsync that
// releases it. A store the kernel dropped without telling (Linux 6.12's kAFS marks the pages of
// a store that had no valid key clean; the next fsync returns 0) is so written again while it
// is still kept, whatever open file's fsync the error went to.
//
// Reads are answered with the kept data laid over what the file gave (overlay()): a read in
// flight while an fsync fails may have read the file after its client dropped the writes and
// before the engine heard of the failure (nothing starts once it has), and a background
// store that fails drops pages with nobody told until the next fsync. The kept data is what
// the guest was last acknowledged, so laying it over is right whether or not the file lost it.
//
// Also: dirty generations (what a given fsync covered), the periodic fsync while dirty, flush().
import createDebug from 'debug';
import { performance } from 'node:perf_hooks';
import { nextRetryDelay } from './backoff';
import type { BlockFile, IoCallback } from './block-file';
import { type ArenaMemory, type ArenaSlot, KeepArena } from './keep-arena';
import type { PoolBudget } from './pool-budget';
import type { EngineStats } from './stats';
import { isTransient } from './transient';

const log = createDebug('afsfile:engine');

export const DEFAULT_FSYNC_INTERVAL_MS = 5000;
/** Write data kept per device until an fsync covers it (EngineOptions.keepBytes). */
export const DEFAULT_KEEP_BYTES = 32 * 1024 * 1024;
/** Back-off of retries after a transient error: doubling from the first to the max. */

export interface DurabilityHooks {
  /** Called on every transient error (the worker kicks renew on EACCES). */
  onTransientError?(code: string, op: string): void;
  /** Lines an administrator must see. */
  warn(message: string): void;
  /** Calls cb once no read or write of the engine is in flight in the file. */
  quiet(cb: () => void): void;
  /**
   * I/O may start again (a recovery ended, or kept data was released). With err, the recovery
   * gave up: writes waiting for room must fail with it.
   */
  resume(err: NodeJS.ErrnoException | null): void;
}

export interface DurabilityOptions {
  fsyncIntervalMs?: number;
  /** Bytes of write data kept until an fsync covers them; 0 keeps nothing (no replay). */
  keepBytes?: number;
  /** Memory for the kept copies (keep-arena.ts); without it each copy is its own buffer. */
  arena?: ArenaMemory;
  /** Shared with the other devices of this process: their kept data together stays within it
   * (a device over it fsyncs to make room before its next write, as at its own bound). */
  keepBudget?: PoolBudget;
  /** reserve() gives slots and the arena keeps its pages warm (EngineOptions.keepInPlace). */
  keepInPlace?: boolean;
}

/** One write (or discard, data null) completed since the last good fsync. */
interface Kept {
  readonly offset: number;
  readonly length: number;
  readonly data: Uint8Array | null;
  readonly gen: number;
  /** Where data lives in the arena; null when not there (a discard, or kept on the heap). */
  readonly slot: ArenaSlot | null;
}

/** Kept ranges are indexed by the 1 MiB chunks they touch (a read looks at its own chunks). */
const CHUNK = 1 << 20;

/** Names one range written (or punched): the same range again replaces the older copy. */
type KeptKey = number | string;

/**
 * The key of a write (or a discard) of `length` bytes at `offset`: an exact integer in sectors
 * when it fits in 2^52 (every write the engine takes), else a string; discards apart from
 * writes. Not a string per write: building and hashing one was a visible share of a kept
 * write's cost (bench/README.md).
 */
function keptKey(discard: boolean, offset: number, length: number): KeptKey {
  const sector = offset / 512;
  const sectors = length / 512;
  if (Number.isInteger(sector) && Number.isInteger(sectors) && sectors < 0x4000 && sector < 2 ** 38) {
    const k = sector * 0x4000 + sectors;
    return discard ? -k - 1 : k;
  }
  return `${discard ? 'd' : ''}${offset}:${length}`;
}

const byGen = (a: Kept, b: Kept): number => a.gen - b.gen;

interface Waiter {
  readonly gen: number;
  readonly cb: IoCallback;
  readonly until: number;
}

export class Durability {
  /** Bumped by every completed write; cleanGen is the generation the last good fsync covered. */
  private dirtyGen = 0;
  private cleanGen = 0;
  /** Completed writes not yet covered by a good fsync, in completion order (Map keeps it). */
  private readonly kept = new Map<KeptKey, Kept>();
  /** The kept ranges touching each 1 MiB chunk of the image, for overlay(). */
  private readonly keptByChunk = new Map<number, Set<Kept>>();
  private keptBytes = 0;
  /** The process's budget of kept bytes (until close, which gives back what is kept). */
  private keepBudget: PoolBudget | undefined;
  /** What this device counts against it: the kept bytes, or the arena's span if larger (copies
   * let go out of order, the same range written again, leave holes in the arena's ring that stay
   * resident until an fsync lets the copies before them go). */
  private charged = 0;
  private readonly keepLimit: number;
  private readonly arena: KeepArena | null;
  private readonly inPlace: boolean;
  /** A failed fsync may have dropped data: the next fsync must come after a replay. */
  private damaged = false;
  /** Bumped by every failed fsync: an fsync that started before a failure proves nothing. */
  private failures = 0;
  private recovering = false;
  /** refresh() calls so far, and the count the last successful attempt had reopened for. */
  private refreshes = 0;
  private refreshed = 0;
  private waiters: Waiter[] = [];
  /** Writes wait for room: the fsync started to make it is running. */
  private roomSync = false;
  private roomWanted = false;
  private periodicRunning = false;
  /** Runs only while dirty: an idle device has no timer to wake it. */
  private timer: NodeJS.Timeout | undefined;
  private intervalMs = 0;
  private closed = false;

  constructor(
    private readonly file: BlockFile,
    private readonly st: EngineStats,
    private holdMs: number,
    private readonly hooks: DurabilityHooks,
    opts: DurabilityOptions = {},
  ) {
    this.keepLimit = Math.max(0, opts.keepBytes ?? DEFAULT_KEEP_BYTES);
    this.inPlace = opts.keepInPlace !== false;
    this.arena = this.keepLimit > 0 && opts.arena ? new KeepArena(this.keepLimit, opts.arena, this.inPlace) : null;
    this.keepBudget = opts.keepBudget;
    this.startTimer(opts.fsyncIntervalMs ?? DEFAULT_FSYNC_INTERVAL_MS);
  }

  get dirty(): boolean {
    return this.dirtyGen !== this.cleanGen;
  }

  /** No read or write may start: a recovery is under way. */
  get holding(): boolean {
    return this.recovering;
  }

  /** Bytes of write data kept (for stats). */
  get keptSize(): number {
    return this.keptBytes;
  }

  /** New timings from a reloaded config (SIGHUP). */
  retune(t: { holdTimeoutMs?: number; fsyncIntervalMs?: number }): void {
    if (t.holdTimeoutMs !== undefined) this.holdMs = t.holdTimeoutMs;
    if (t.fsyncIntervalMs !== undefined && !this.closed) this.startTimer(t.fsyncIntervalMs);
  }

  /**
   * May a write of `bytes` start? False when the kept data is at its bound: an fsync is started
   * to make room, and hooks.resume() is called when there is some. One write larger than the
   * bound starts when nothing is kept. The bound may be passed by what is in flight meanwhile
   * (at most the engine's in-flight budget).
   */
  admit(bytes: number, reserved = false): boolean {
    if (this.keepLimit === 0 || this.keptBytes === 0) return true;
    // A write with its room reserved is charged to the process budget already.
    if (this.keptBytes + bytes <= this.keepLimit && (reserved || (this.keepBudget?.fits(bytes) ?? true))) return true;
    this.roomWanted = true;
    if (!this.roomSync) {
      this.roomSync = true;
      this.sync((err) => {
        this.roomSync = false;
        if (err) this.hooks.warn(`fsync to release kept write data failed: ${err.code ?? err.message}`);
        // A recovery that gave up has already failed the waiting writes.
        if (this.roomWanted && !this.recovering) {
          this.roomWanted = false;
          this.hooks.resume(null);
        }
      });
    }
    return false;
  }

  /**
   * Room in the arena for the data of a write about to start (the engine grant-copies it there):
   * when it completes, wrote() keeps it where it is, with no copy. Null when there is no arena or
   * no room now (the write then uses the engine's buffers, and wrote() copies). Every slot given
   * goes back through wrote() or unreserve().
   */
  reserve(bytes: number): ArenaSlot | null {
    if (this.arena === null || !this.inPlace || this.closed || !(this.keepBudget?.fits(bytes) ?? true)) return null;
    const slot = this.arena.reserve(bytes);
    if (slot) this.recharge();
    return slot;
  }

  /** A slot from reserve() whose write did not complete: let it go. */
  unreserve(slot: ArenaSlot): void {
    this.arena!.free(slot);
    this.recharge();
  }

  /** The memory reserve()'s slots live in. */
  arenaMemory(): Uint8Array {
    return this.arena!.memoryOf();
  }

  /**
   * A write completed (acknowledged to the guest next): keep a copy until an fsync covers it.
   * `slot`: data is that slot of reserve(), kept as it is.
   */
  wrote(offset: number, data: Uint8Array, slot: ArenaSlot | null = null): void {
    this.dirtyGen++;
    if (!this.timer) this.startTimer(this.intervalMs);
    if (this.keepLimit === 0) {
      if (slot) this.unreserve(slot);
      return;
    }
    const key = keptKey(false, offset, data.length);
    if (slot) return this.keep(key, offset, data.length, slot.view, slot);
    const copy = this.arena?.copy(data);
    if (copy) this.keep(key, offset, data.length, copy.view, copy);
    else this.keep(key, offset, data.length, data.slice(), null);
  }

  /**
   * Lays the kept data over `buf`, just read from `offset`: in completion order, punched
   * ranges as zeros. Nothing to do (one Map size check) while nothing is kept.
   */
  overlay(offset: number, buf: Uint8Array): void {
    if (this.kept.size === 0 || buf.length === 0) return;
    const end = offset + buf.length;
    let hits: Set<Kept> | null = null;
    const last = Math.floor((end - 1) / CHUNK);
    for (let c = Math.floor(offset / CHUNK); c <= last; c++) {
      const set = this.keptByChunk.get(c);
      if (set === undefined) continue;
      if (hits === null) hits = new Set(set);
      else for (const k of set) hits.add(k); // a range over a chunk edge is in both
    }
    if (hits === null) return;
    for (const k of [...hits].sort(byGen)) {
      const from = Math.max(offset, k.offset);
      const to = Math.min(end, k.offset + k.length);
      if (from >= to) continue;
      if (k.data === null) buf.fill(0, from - offset, to - offset);
      else buf.set(k.data.subarray(from - k.offset, to - k.offset), from - offset);
    }
  }

  /** A hole was punched: replayed in order, as the writes are. */
  discarded(offset: number, length: number): void {
    this.dirtyGen++;
    if (!this.timer) this.startTimer(this.intervalMs);
    if (this.keepLimit > 0) this.keep(keptKey(true, offset, length), offset, length, null, null);
  }

  /**
   * Makes everything completed so far durable. cb(null) once it is (after a recovery if an
   * fsync fails); cb(err) when that failed until hold-timeout (or `deadlineMs`, if shorter).
   */
  sync(cb: IoCallback, deadlineMs?: number): void {
    const gen = this.dirtyGen;
    const until = performance.now() + Math.min(deadlineMs ?? Infinity, this.holdMs);
    if (this.damaged || this.recovering) {
      this.waiters.push({ gen, cb, until });
      this.recover();
      return;
    }
    const failures = this.failures;
    this.file.fsync((err) => {
      if (!err) {
        // A failure since this fsync started may have dropped what it stored: then it proves
        // nothing, and the recovery answers.
        if (failures === this.failures && !this.damaged) {
          this.fsyncDone(gen);
          return cb(null);
        }
        this.waiters.push({ gen, cb, until });
        return this.recover();
      }
      this.st.fsyncErrors++;
      this.failures++;
      if (err.code && isTransient(err.code, 'fsync')) this.hooks.onTransientError?.(err.code, 'fsync');
      if (this.keepLimit === 0 && !isTransient(err.code, 'fsync')) return cb(err);
      if (!this.damaged && this.keepLimit > 0)
        this.hooks.warn(`fsync failed (${err.code ?? err.message}): the file system may have dropped ${this.kept.size} write(s) (${this.keptBytes} bytes) since the last good fsync; holding I/O to write them again`);
      this.damaged = true;
      this.waiters.push({ gen, cb, until });
      this.recover();
    });
  }

  /**
   * New tokens: reopen the image, write what is kept again through it, fsync; no other I/O
   * starts meanwhile. cb(null) once done; cb(err) when that failed until hold-timeout (the
   * data stays kept, as after a recovery that gave up).
   */
  refresh(cb: IoCallback): void {
    this.refreshes++;
    this.waiters.push({ gen: this.dirtyGen, cb, until: performance.now() + this.holdMs });
    this.recover();
  }

  /** sync() as a promise: resolves when the file is clean as of the call. */
  flush(deadlineMs?: number): Promise<void> {
    return new Promise((resolve, reject) => this.sync((err) => (err ? reject(err) : resolve()), deadlineMs));
  }

  /** Stops the periodic fsync timer and any recovery. Does not fsync. */
  close(): void {
    this.closed = true;
    this.keepBudget?.give(this.charged);
    this.keepBudget = undefined;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  // ------------------------------------------------------------------------------------------

  private keep(key: KeptKey, offset: number, length: number, data: Uint8Array | null, slot: ArenaSlot | null): void {
    const old = this.kept.get(key);
    if (old) {
      // Re-inserted at the end: replay order stays completion order.
      this.kept.delete(key);
      this.unindex(old);
      this.keptBytes -= old.data?.length ?? 0;
      if (old.slot) this.arena!.free(old.slot);
    }
    const k: Kept = { offset, length, data, gen: this.dirtyGen, slot };
    this.kept.set(key, k);
    this.index(k);
    this.keptBytes += data?.length ?? 0;
    this.recharge();
    this.st.keptBytes = this.keptBytes;
  }

  private index(k: Kept): void {
    const last = Math.floor((k.offset + k.length - 1) / CHUNK);
    for (let c = Math.floor(k.offset / CHUNK); c <= last; c++) {
      const set = this.keptByChunk.get(c);
      if (set === undefined) this.keptByChunk.set(c, new Set([k]));
      else set.add(k);
    }
  }

  private unindex(k: Kept): void {
    const last = Math.floor((k.offset + k.length - 1) / CHUNK);
    for (let c = Math.floor(k.offset / CHUNK); c <= last; c++) {
      const set = this.keptByChunk.get(c);
      if (set === undefined) continue;
      set.delete(k);
      if (set.size === 0) this.keptByChunk.delete(c);
    }
  }

  /** Brings this device's charge against the process's budget up to date. */
  private recharge(): void {
    const b = this.keepBudget;
    if (!b) return;
    const now = Math.max(this.keptBytes, this.arena?.span() ?? 0);
    if (now > this.charged) b.charge(now - this.charged);
    else if (now < this.charged) b.give(this.charged - now);
    this.charged = now;
  }

  private fsyncDone(genAtStart: number): void {
    this.st.fsyncs++;
    this.st.lastFsync = Date.now();
    // Writes that completed before this fsync started are durable now.
    if (genAtStart - this.cleanGen > 0) this.cleanGen = genAtStart;
    for (const [key, k] of this.kept) {
      if (k.gen > genAtStart) break;
      this.kept.delete(key);
      this.unindex(k);
      this.keptBytes -= k.data?.length ?? 0;
      if (k.slot) this.arena!.free(k.slot);
    }
    this.st.keptBytes = this.keptBytes;
    // The pages let go past the arena's warm part go back (one madvise or two per fsync).
    this.arena?.trim();
    this.recharge();
  }

  /** Wait, reopen, write the kept data again, fsync; with back-off until hold-timeout. */
  private recover(): void {
    if (this.recovering) return;
    this.recovering = true;
    const started = performance.now();
    let delay = 0;
    let attempts = 0;
    const end = (err: NodeJS.ErrnoException | null) => {
      this.recovering = false;
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w.cb(err);
      this.roomWanted = false;
      this.hooks.resume(err);
    };
    const failed = (err: NodeJS.ErrnoException, op: string) => {
      if (err.code && isTransient(err.code, op === 'fsync' ? 'fsync' : 'write')) this.hooks.onTransientError?.(err.code, op);
      log('recovery attempt %d: %s failed: %s', attempts, op, err.code ?? err.message);
      const now = performance.now();
      // Waiters past their own deadline (a bounded flush) hear the error now.
      const due = this.waiters.filter((w) => w.until <= now);
      if (due.length > 0) {
        this.waiters = this.waiters.filter((w) => w.until > now);
        for (const w of due) w.cb(err);
      }
      if (now - started >= this.holdMs || (this.keepLimit === 0 && !isTransient(err.code, 'fsync'))) {
        this.hooks.warn(`giving up after ${attempts} attempt(s) to make the kept writes durable: ${err.code ?? err.message}; they stay kept for the next fsync`);
        return end(err);
      }
      this.st.retries++;
      delay = nextRetryDelay(delay);
      const wait = Math.min(delay, Math.max(1, this.holdMs - (now - started)));
      setTimeout(attempt, wait);
    };
    const attempt = () => {
      if (this.closed) return end(Object.assign(new Error('image closed'), { code: 'EBADF' }));
      attempts++;
      const asked = this.refreshes;
      this.reopen(asked !== this.refreshed, () => this.replay([...this.kept.values()], 0, (err) => {
        if (err) return failed(err, 'write');
        const gen = this.dirtyGen;
        this.file.fsync((ferr) => {
          if (this.closed) return end(Object.assign(new Error('image closed'), { code: 'EBADF' }));
          if (ferr) {
            this.st.fsyncErrors++;
            this.failures++;
            this.damaged = true;
            return failed(ferr, 'fsync');
          }
          const bytes = this.keptBytes;
          const n = this.kept.size;
          const wasDamaged = this.damaged;
          this.damaged = false;
          this.fsyncDone(gen);
          this.refreshed = asked;
          if (wasDamaged) {
            this.st.recoveries++;
            if (this.keepLimit > 0) this.hooks.warn(`recovered after ${attempts} attempt(s): wrote ${n} kept write(s) (${bytes} bytes) again and fsynced`);
          } else if (n > 0) {
            this.hooks.warn(`reopened for new tokens: wrote ${n} kept write(s) (${bytes} bytes) again and fsynced`);
          }
          // Tokens renewed again while this attempt ran: once more, through a newer open file.
          if (this.refreshes !== asked) return void setTimeout(attempt, 0);
          end(null);
        });
      }));
    };
    // Nothing new starts from now (holding); the first attempt waits for what is in flight.
    this.hooks.quiet(() => setTimeout(attempt, delay));
  }

  /**
   * Reopens the image if it can be (kAFS binds the key to the open file); failure is no stop.
   * Without kept data (keepBytes 0) only for new tokens: a replay needs none.
   */
  private reopen(forTokens: boolean, next: () => void): void {
    if (!this.file.reopen || (this.keepLimit === 0 && !forTokens)) return next();
    this.file.reopen((err) => {
      if (err) log('reopen failed: %s; writing again through the open file', err.code ?? err.message);
      next();
    });
  }

  /** Writes kept[i..] again, one after another, in completion order. */
  private replay(list: Kept[], i: number, cb: IoCallback): void {
    if (this.closed) return cb(Object.assign(new Error('image closed'), { code: 'EBADF' }));
    if (i >= list.length) return cb(null);
    const k = list[i];
    if (k.data === null) {
      this.file.discard(k.offset, k.length, (err) => (err ? cb(err) : this.replay(list, i + 1, cb)));
      return;
    }
    this.st.replayedBytes += k.data.length;
    this.file.write(k.data, k.offset, (err) => (err ? cb(err) : this.replay(list, i + 1, cb)));
  }

  private startTimer(intervalMs: number): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.intervalMs = intervalMs;
    if (intervalMs > 0 && this.dirty && !this.closed) {
      this.timer = setInterval(() => this.periodic(), intervalMs);
      this.timer.unref();
    }
  }

  private periodic(): void {
    if (!this.dirty && !this.periodicRunning && !this.recovering) {
      // Clean: stop until the next write (wrote() and discarded() start the timer again), and
      // give the kept data's pages back (not after every fsync: a busy device would fault them
      // in again right away).
      clearInterval(this.timer);
      this.timer = undefined;
      this.arena?.releaseMemory();
      return;
    }
    if (!this.dirty || this.periodicRunning || this.recovering) return;
    this.periodicRunning = true;
    this.sync((err) => {
      this.periodicRunning = false;
      if (err) this.hooks.warn(`periodic fsync failed: ${err.code ?? err.message}; will retry`);
    });
  }
}
