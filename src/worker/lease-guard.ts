// The image lock may be lost while a device is attached, and a device must then write no more:
// another host may hold the image by now. On AFS the lock is a lease the file server drops 300 s
// after its last extension (OpenAFS viced/afsfileprocs.c HandleLocking, AFS_LOCKWAIT); the
// client extends it at half the lease with the key that locked the file (Linux fs/afs/flock.c
// afs_lock_work), and cannot when the file server is unreachable or that key has expired. The
// extension that last succeeded can be up to half a lease older than the first failure, so a
// lapse is possible half a lease (RISK_MS) after extensions could first have failed.
//
// The guard wraps the image's writes, fsync and discard (reads store nothing). It watches for
// trouble: I/O errors that mean the file server or the key failed, a token the renewal let
// lapse (checked every 30 s while idle too), or this process not running at all (an event
// loop stall); a completed fsync ends it.
// A trouble window that reached RISK_MS leaves the lock in doubt; before the next store the lock
// is checked (verifyLock): gone, or on AFS at all (the file server keeps no owner of a lock:
// another client's lock is extended and released by anyone's call, so nothing proves it is
// still ours), the lock counts as lost. Then every store fails with ENOLCK (not retried: the
// guest sees the error at once), reads go on, and the administrator is told to re-attach.
// hold() stops the stores while the lock is taken again with a renewed key (device-lock.ts
// rekey): between the release and the new grant this host holds nothing.
import createDebug from 'debug';
import type { IoCallback } from '../engine/block-file';
import type { LockCheck, LockStatus } from '../image/lock';
import type { DeviceImage } from './device';

const log = createDebug('afsfile:device');

/** The AFS lock lease (OpenAFS src/afs/afs.h and viced: AFS_LOCKWAIT, 5 minutes). */
export const LEASE_MS = 300_000;
/** A trouble window this long leaves the lock in doubt: the client extends at half the lease. */
export const RISK_MS = LEASE_MS / 2;
/** How often the guards look at the token and at the clock while nothing happens: one timer
 * for all the guards of a process (a host process may serve hundreds of idle disks). */
const TICK_MS = 30_000;
const shared = new Set<LeaseGuard>();
let sharedTimer: NodeJS.Timeout | undefined;

function share(g: LeaseGuard): void {
  shared.add(g);
  if (sharedTimer) return;
  sharedTimer = setInterval(() => { for (const s of shared) s.tick(); }, TICK_MS);
  sharedTimer.unref();
}

function unshare(g: LeaseGuard): void {
  shared.delete(g);
  if (shared.size === 0 && sharedTimer) { clearInterval(sharedTimer); sharedTimer = undefined; }
}

/** Store errors that say the file server or the key failed (so the lease may not be extended).
 * Not ENOSPC/EDQUOT (the server answered) nor EINTR. */
const TROUBLE = new Set([
  'EIO', 'ETIMEDOUT', 'ETIME', 'ENOTCONN', 'EHOSTDOWN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNREFUSED', 'EDESTADDRREQ',
  'EAGAIN', 'EBUSY', 'EACCES', 'EKEYEXPIRED', 'ENOKEY', 'EKEYREJECTED', 'EKEYREVOKED',
]);

export interface LeaseGuardOptions {
  /** The lock as it is now (a migration destination takes it late). */
  readonly lock: () => LockStatus | undefined;
  /** Checks the lock (verifyLock on the device's lock). */
  readonly verify: () => Promise<LockCheck>;
  /** The lock is lost: record it (status) and tell the administrator. */
  readonly lost: (message: string) => void;
  /** Why the token would refuse a store now (token-gate.ts), checked while idle; optional. */
  readonly tokenTrouble?: () => string | undefined;
  /** Default RISK_MS; tests shorten it. */
  readonly riskMs?: number;
  /** A timer of its own at this period (tests); default: the shared one, TICK_MS. */
  readonly tickMs?: number;
  readonly now?: () => number;
}

export class LeaseGuard {
  private readonly riskMs: number;
  private readonly now: () => number;
  /** Since when the lease may not have been extended, and why (undefined: no trouble now). */
  private troubleSince: number | undefined;
  private troubleWhy = '';
  /** The lock is in doubt: checked before the next store. */
  private doubt: string | undefined;
  private lostMessage: string | undefined;
  private checking = false;
  /** hold() runs: stores wait (a lock being taken again). */
  private held = 0;
  /** Stores under way, and who waits for them to end (hold). */
  private inflight = 0;
  private drained: Array<() => void> = [];
  private readonly waiting: Array<() => void> = [];
  private readonly timer: NodeJS.Timeout | undefined;
  private lastTick: number;

  constructor(private readonly o: LeaseGuardOptions) {
    this.riskMs = o.riskMs ?? RISK_MS;
    this.now = o.now ?? Date.now;
    this.lastTick = this.now();
    if (o.tickMs === undefined) {
      share(this);
    } else {
      this.timer = setInterval(() => this.tick(), o.tickMs);
      this.timer.unref();
    }
  }

  /** Wraps the image's writes, fsync and discard, and watches its reads; returns the same image. */
  wrap(img: DeviceImage): DeviceImage {
    const read = img.read.bind(img);
    const write = img.write.bind(img);
    const fsync = img.fsync.bind(img);
    const discard = img.discard.bind(img);
    img.read = (buf, offset, cb) => read(buf, offset, (err) => { if (err) this.failed('read', err); cb(err); });
    img.write = (buf, offset, cb) => this.store('write', cb, (done) => write(buf, offset, done));
    img.fsync = (cb) => this.store('fsync', cb, (done) => fsync(done));
    img.discard = (offset, length, cb) => this.store('discard', cb, (done) => discard(offset, length, done));
    return img;
  }

  /** The lock was found lost (a message), or undefined. */
  get lost(): string | undefined {
    return this.lostMessage;
  }

  close(): void {
    clearInterval(this.timer);
    unshare(this);
  }

  /**
   * Runs `work` with no store under way: the stores under way end first, new ones wait until it
   * is done (reads go on). With `storesUntil` (a time) stores go on until then, and wait from
   * then on if `work` is not done. `work` answers why the lock is lost, or undefined.
   */
  async hold(work: () => Promise<string | undefined>, storesUntil?: number): Promise<void> {
    let blocked = false;
    const block = () => { blocked = true; this.held++; };
    const delay = storesUntil === undefined ? 0 : storesUntil - this.now();
    const timer = delay > 0 ? setTimeout(block, delay) : undefined;
    if (timer === undefined) block();
    let lost: string | undefined;
    try {
      if (blocked && this.inflight > 0) await new Promise<void>((r) => this.drained.push(r));
      lost = await work().catch((e: Error) => `the image lock could not be taken again: ${e.message}`);
    } finally {
      clearTimeout(timer);
      if (blocked) this.held--;
    }
    if (lost !== undefined && this.lostMessage === undefined) {
      this.lostMessage = lost;
      this.o.lost(lost);
    }
    if (this.held === 0 && !this.checking) for (const go of this.waiting.splice(0)) go();
  }

  private store(op: string, cb: IoCallback, run: (done: IoCallback) => void): void {
    if (this.lostMessage !== undefined) { setImmediate(cb, refusal(op, this.lostMessage)); return; }
    if (this.held > 0) { this.waiting.push(() => this.store(op, cb, run)); return; }
    this.assess();
    if (this.doubt !== undefined || this.checking) {
      this.waiting.push(() => this.store(op, cb, run));
      this.recheck();
      return;
    }
    this.inflight++;
    run((err) => {
      // Only a completed fsync shows that the file server took a store with the key: a write
      // or a read may be served by the client's cache during an outage.
      if (err === null) { if (op === 'fsync') this.good(); } else this.failed(op, err);
      if (--this.inflight === 0) for (const go of this.drained.splice(0)) go();
      cb(err);
    });
  }

  private failed(op: string, err: NodeJS.ErrnoException): void {
    if (err.code !== undefined && TROUBLE.has(err.code)) this.trouble(`${op}: ${err.code}`);
  }

  private trouble(why: string): void {
    if (this.troubleSince !== undefined) return;
    this.troubleSince = this.now();
    this.troubleWhy = why;
    log('lease guard: trouble from now (%s)', why);
  }

  /** The key and the file server work again: a window that lasted long enough leaves a doubt. */
  private good(): void {
    this.assess();
    this.troubleSince = undefined;
  }

  private assess(): void {
    if (this.troubleSince === undefined || this.doubt !== undefined) return;
    const s = this.now() - this.troubleSince;
    if (s < this.riskMs) return;
    this.doubt = `the lock could not be extended for ${Math.round(s / 1000)} s (${this.troubleWhy})`;
  }

  /** While idle too: the token (a lapsed key extends nothing) and the process's own stalls. */
  tick(): void {
    const t = this.now();
    const gap = t - this.lastTick;
    this.lastTick = t;
    if (gap >= this.riskMs && this.doubt === undefined) {
      this.doubt = `this process did not run for ${Math.round(gap / 1000)} s`;
    }
    const why = this.o.tokenTrouble?.();
    if (why !== undefined) this.trouble(why);
    else if (this.troubleSince !== undefined && this.troubleWhy.startsWith('the AFS token')) this.good();
    this.assess();
  }

  private recheck(): void {
    if (this.checking) return;
    this.checking = true;
    const doubt = this.doubt ?? 'a check was asked for';
    void this.decide(doubt).then((lost) => {
      this.checking = false;
      this.doubt = undefined;
      this.troubleSince = undefined;
      if (lost !== undefined) {
        this.lostMessage = lost;
        this.o.lost(lost);
      } else {
        log('lease guard: %s; the lock is still held here', doubt);
      }
      if (this.held === 0) for (const go of this.waiting.splice(0)) go();
    });
  }

  /** A message when the lock is lost (or cannot be trusted), else undefined. */
  private async decide(doubt: string): Promise<string | undefined> {
    const lock = this.o.lock();
    if (!lock || lock.fd === null) return undefined; // nothing was taken (none, deferred)
    const fix = 'writes are refused from now on; detach the disk and attach it again (the lock is taken anew, ' +
      'or refused if another host has the image)';
    if (lock.reach === 'afs') {
      return `the image lock is lost: ${doubt}, longer than half the AFS lock lease (${LEASE_MS / 1000} s): the ` +
        `file server may have dropped it, and it cannot tell whose a lock is; ${fix}`;
    }
    const r = await this.o.verify().catch((e: Error) => ({ held: false as const, message: e.message }));
    if (r.held) return undefined;
    return `the image lock is lost (${doubt}): ${r.message}; ${fix}`;
  }
}

function refusal(op: string, why: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${op} refused: ${why}`);
  err.code = 'ENOLCK';
  err.syscall = op;
  return err;
}
