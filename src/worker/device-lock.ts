// The image lock of one device process (src/image/lock.ts does the locking): taken right after
// the image is opened, before the supervisor's verdict, so that a conflict with another host is
// refused at once; adopted from the previous process of the device when that one still lives
// (a supervisor restart); handed on to the next process when the supervisor is gone; and, for a
// migration destination, deferred to the connect of its frontend.
//
// Migration, in libxl's order (tools/libs/light/libxl_create.c, tools/xl/xl_migrate.c): the
// destination (named `<name>--incoming` while it receives) gets its disks after the whole stream
// has arrived, while the source is suspended but still holds its disks; xl destroys the source
// only after the destination has unpaused. So the destination attaches without the lock and
// takes it when its frontend connects, waiting (bounded) for the source to drain, fsync and
// close. It serves nothing before: a write the source completes after the guest re-issued it
// on the destination would corrupt the image. An aborted migration leaves the source as it was.
import { setTimeout as sleep } from 'node:timers/promises';
import { type ImageLock, type LockCheck, type LockHolder, type LockPolicy, type LockStatus, adoptLock, allowAdoption,
  deferredLock, lockImage, relockImage, verifyLock } from '../image/lock';
import { lockFollowsKey } from '../image/lock-fs';

import { LEASE_MS } from './lease-guard';

export { INCOMING_SUFFIX } from '../xen/migration';
/** How often a destination tries the source's lock again while it waits. */
const RETRY_MS = 100;
/**
 * How long a lock released to be taken again with a renewed key may stay refused: the AFS lease
 * and a margin. Only a release the file server did not take (its key already lapsed, the server
 * unreachable) makes it wait that long, until the server drops the old lock itself; past it,
 * another host has the image. The wait is a waiting flock (relockImage): on kAFS only that asks
 * the server again, which ends the old lease at the first SetLock after it ran out.
 */
const RELOCK_WAIT_MS = LEASE_MS + 30_000;
/**
 * How long after its key lapsed a lock surely still stands on the file server: it was extended
 * every half lease while the key was valid, so the last extension is less than half a lease
 * older than the lapse, and the server keeps it a whole lease after that. A margin off.
 */
const STALE_KEY_HELD_MS = LEASE_MS / 2 - 20_000;

export type LockStep = { readonly ok: true } | { readonly ok: false; readonly busy: boolean; readonly message: string };

/** What a connect gate answers (Device's connectGate). */
export type GateAnswer = 'go' | 'wait' | { readonly error: string };

export interface DeviceLockOptions {
  readonly policy: LockPolicy;
  /** How long a destination waits for the source's lock (migration-lock-wait). */
  readonly migrationWaitMs: number;
  /** The lock changed: for the status file. */
  readonly onChange: () => void;
  readonly note: (m: string) => void;
  /** Default RELOCK_WAIT_MS; tests shorten it. */
  readonly relockWaitMs?: number;
  /** When the key an image opened now gets lapses (the tokens in force), if known. */
  readonly keyExpiry?: () => number | undefined;
}

export class DeviceLock {
  private lock: ImageLock | undefined;
  private image: { fd: number; path: string; writable: boolean; fsMagic?: number } | undefined;
  private waiting: Promise<void> | undefined;
  private failed: string | undefined;
  private cancelled = false;
  /** A rekey under way. */
  private moving: Promise<string | undefined> | undefined;
  /** When the key of the lock's open file lapses (read when it was opened), if known. */
  private keyExpires: number | undefined;
  /** Whether the lock must follow each renewed key (kAFS; not OpenAFS: lockFollowsKey). */
  private follows = false;

  constructor(private readonly o: DeviceLockOptions) {}

  /** Where the lock is, for the status file (and for a successor that adopts it). */
  status(): LockStatus | undefined {
    return this.lock?.status();
  }

  /**
   * At open: adopt the predecessor's lock, or (a migration destination) defer it, or take it.
   * `incoming`: the domain's name says it is receiving a migration.
   */
  async acquire(
    image: { fd: number; dev: number; ino: number; fsMagic?: number }, path: string, writable: boolean,
    incoming: boolean, predecessor: LockHolder | undefined,
  ): Promise<LockStep> {
    this.image = { fd: image.fd, path, writable, fsMagic: image.fsMagic };
    this.keyExpires = this.o.keyExpiry?.();
    this.follows = lockFollowsKey(image.fd, image.fsMagic);
    if (predecessor) {
      const adopted = await adoptLock(predecessor, image, writable);
      if (typeof adopted !== 'string') {
        this.lock = adopted;
        this.keyExpires = undefined; // the predecessor's key: unknown
        this.o.note(`the image lock was adopted from process ${predecessor.pid}`);
        return { ok: true };
      }
      this.o.note(`the image lock could not be adopted from process ${predecessor.pid}: ${adopted}; locking again`);
    }
    if (incoming) {
      this.lock = deferredLock(image.fd, writable, 'a migration destination: locked when its guest connects',
        image.fsMagic);
      return { ok: true };
    }
    const r = await lockImage(image.fd, path, writable, this.o.policy, image.fsMagic);
    if (!r.ok) return r;
    this.lock = r.lock;
    if (r.lock.state === 'none') this.o.note(r.lock.status().note ?? 'the image is not locked');
    return { ok: true };
  }

  /** Device's connect gate: a deferred lock is taken first (waiting for the migration source). */
  gate(poke: () => void): GateAnswer {
    if (this.failed) return { error: this.failed };
    if (this.lock?.state !== 'deferred') return 'go';
    this.waiting ??= this.waitForSource().then(() => { this.waiting = undefined; poke(); });
    return 'wait';
  }

  private async waitForSource(): Promise<void> {
    const img = this.image!;
    const until = Date.now() + this.o.migrationWaitMs;
    const started = Date.now();
    for (;;) {
      if (this.cancelled) return;
      const r = await lockImage(img.fd, img.path, img.writable, this.o.policy, img.fsMagic);
      if (r.ok) {
        this.lock = r.lock;
        this.o.note(`migration destination: the image lock was taken after ${Date.now() - started} ms`);
        this.o.onChange();
        return;
      }
      if (!r.busy || Date.now() >= until) {
        this.failed = r.busy
          ? `migration destination: the source still holds the lock on ${img.path} after ` +
            `${Math.round(this.o.migrationWaitMs / 1000)} s (migration-lock-wait): it did not finish; ` +
            'the disk is not served here (destroy this domain; the source keeps the image)'
          : r.message;
        this.o.note(this.failed);
        this.o.onChange();
        return;
      }
      await sleep(RETRY_MS);
    }
  }

  /**
   * The supervisor is gone: keep the lock (this process stays) until the next process of the
   * device has taken it (it then ends this one with SIGTERM: `stop` resolves), or `ms`.
   */
  async handOn(ms: number, stop: Promise<void>): Promise<void> {
    if (this.lock?.fd === null || this.lock === undefined) return;
    allowAdoption();
    this.o.note('the supervisor is gone: keeping the image lock for the next worker ' +
      `(at most ${Math.round(ms / 1000)} s)`);
    await Promise.race([sleep(ms), stop]);
  }

  /**
   * Whether a token renewal moves the lock (rekey): on kAFS, whose extensions use the key of the
   * lock's open file; not on OpenAFS, which extends its locks itself (lockFollowsKey).
   */
  get followsKey(): boolean {
    return this.follows;
  }

  /**
   * After a token renewal, on kAFS: the lock is taken again through a new open file, so that it
   * is extended with the renewed key (relockImage). Resolves to why the lock is lost, or undefined
   * (moved, or nothing to move). The caller stores nothing meanwhile (LeaseGuard.hold).
   */
  rekey(): Promise<string | undefined> {
    // One at a time: a renewal during a move moves the lock again, after it.
    const next = (this.moving ?? Promise.resolve(undefined)).then((lost) => lost ?? this.move());
    this.moving = next;
    void next.finally(() => { if (this.moving === next) this.moving = undefined; });
    return next;
  }

  private async move(): Promise<string | undefined> {
    const img = this.image;
    const lock = this.lock;
    if (!img || !lock || lock.fd === null || (lock.state !== 'held' && lock.state !== 'adopted')) return undefined;
    if (!this.follows) return undefined;
    const expires = this.o.keyExpiry?.(); // read before the new open file: its key is at least this one
    const r = await relockImage(lock, img.path, img.writable, {
      waitMs: this.o.relockWaitMs ?? RELOCK_WAIT_MS, retryMs: RETRY_MS, cancelled: () => this.cancelled,
    });
    if (r.ok && this.cancelled) { r.lock.release(); return undefined; }
    if (r.ok) {
      this.lock = r.lock;
      this.keyExpires = expires;
      this.o.note(`the image lock was ${r.lock.status().note ?? 'taken again with the renewed key'}`);
      this.o.onChange();
      return undefined;
    }
    if (this.cancelled) return undefined;
    this.o.onChange();
    return r.message;
  }

  /**
   * For rekey: when the lock's key has lapsed already, its release cannot reach the file server,
   * which keeps the old lock (and everyone else out) for a while yet: until when, so that the
   * device may write on meanwhile. Undefined: the release works (or nothing is known), the
   * lock is gone from the moment it is released.
   */
  staleKeyHorizon(now = Date.now()): number | undefined {
    const e = this.keyExpires;
    return e !== undefined && e <= now ? e + STALE_KEY_HELD_MS : undefined;
  }

  /** Checks, without disturbing it, that the lock is still held here (lease-guard.ts). */
  verify(): Promise<LockCheck> {
    const img = this.image;
    if (!this.lock || !img) return Promise.resolve({ held: true });
    return verifyLock(this.lock, img.path);
  }

  /** The lock is lost or cannot be trusted any more: the status file says so. */
  markLost(message: string): void {
    this.lock?.markLost(message);
    this.o.onChange();
  }

  /** No more waiting for a source (the device is going away). */
  cancel(): void {
    this.cancelled = true;
  }

  /** The device is done, its image closed: the lock's descriptor too (a device host lives on;
   * the lock ends with the last close of its open file). */
  release(): void {
    this.cancel();
    this.lock?.release();
  }
}

/** The predecessor's lock, from its status file, if it is still alive and holds one. */
export function lockHolder(prev: Record<string, unknown> | undefined, alive: boolean): LockHolder | undefined {
  if (!prev || !alive) return undefined;
  const lock = prev.lock as Record<string, unknown> | undefined;
  const fd = lock?.fd;
  const pid = prev.pid;
  if (typeof fd !== 'number' || typeof pid !== 'number' || !Number.isInteger(fd) || fd < 0) return undefined;
  const keeper = lock?.keeper;
  return {
    pid, pidStart: typeof prev.pidStart === 'string' ? prev.pidStart : undefined, fd,
    ...(typeof keeper === 'number' && Number.isInteger(keeper) && keeper > 0 ? { keeper } : {}),
  };
}
