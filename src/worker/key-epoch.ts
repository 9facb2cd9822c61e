// Which renewal the image's open file has its key from, and the reopen after each renewal.
//
// kAFS writes back with a key of the vnode's open files (fs/afs/file.c afs_cache_wb_key,
// fs/afs/write.c afs_get_writeback_key: the first one still valid, in open order), never with
// a key made after the last open; a renewal is a new key (the rxrpc key type has no update).
// Once the old key has lapsed a store has no key at all: Linux 6.1 redirtied the pages and
// tried again later; Linux 6.12 (netfs write-back, fs/netfs/write_collect.c) fails the store
// and the pages end clean. One Xen AFS expiry run on 6.12 lost the writes made between the
// renewal and the reopen that way: fsync returned 0, the server had zeros. So from the moment
// renew counts a renewal the open file predates, every write and fsync is held (the token gate
// answers EAGAIN; the engine retries) until the image is open again, and the reopen is
// asked for at once. A reopen records the count read before it: a renewal racing with the open costs
// one more reopen, never a stale key taken for a new one.
import type { RenewWatch } from './token-gate';

export interface KeyEpochHooks {
  /**
   * Reopens the image (the engine's refresh: other I/O held, kept writes written again through
   * the new open file); false when there is nothing to reopen (not on AFS, no image).
   */
  reopen(cb: (err: NodeJS.ErrnoException | null) => void): boolean;
  note(message: string, level: 'info' | 'warning'): void;
}

export class KeyEpoch {
  private keyAt: string | undefined;
  private started = false;
  private reopening = false;

  /** Construct BEFORE the image is opened: the count then is what its key has at least. */
  constructor(private readonly watch: RenewWatch, private readonly hooks: KeyEpochHooks) {
    this.keyAt = watch.renewal(true);
  }

  /** A renewal the open file has no key of, or undefined. */
  private newer(): string | undefined {
    const n = this.watch.renewal();
    return n !== undefined && n !== this.keyAt ? n : undefined;
  }

  get stale(): boolean {
    return this.newer() !== undefined;
  }

  /** For the token gate: why stores must wait for the reopen (which it asks for), or undefined. */
  check(): string | undefined {
    const n = this.newer();
    if (n === undefined) return undefined;
    setImmediate(() => this.poke());
    return `the image is not yet open again with the tokens of renewal ${n}`;
  }

  /** Read before an open: pass it to opened() once the open succeeded. */
  before(): string | undefined {
    return this.watch.renewal(true);
  }

  opened(renewal: string | undefined): void {
    this.keyAt = renewal;
  }

  /** The image is being served: reopens may start (now, if a renewal came meanwhile). */
  start(): void {
    this.started = true;
    this.poke();
  }

  /** Reopens if a renewal is not yet in the open file's key and no reopen is under way. */
  poke(): void {
    if (!this.started || this.reopening || !this.stale) return;
    const n = this.before();
    this.reopening = true;
    const going = this.hooks.reopen((err) => {
      this.reopening = false;
      if (err) {
        const why = err.code ?? err.message;
        this.hooks.note(`tokens renewed, but reopening the image failed: ${why}; writes held until it is`, 'warning');
      } else {
        this.hooks.note(`tokens renewed (renewal ${n}): image reopened`, 'info');
      }
      // A failed reopen (or a renewal meanwhile) is tried again: the gate keeps asking.
    });
    if (!going) {
      // Nothing to reopen: nothing may wait for it.
      this.reopening = false;
      this.opened(n);
    }
  }
}
