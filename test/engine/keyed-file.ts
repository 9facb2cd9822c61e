// An image file with kAFS's write-back keys, as a BlockFile (and a DeviceImage for the token
// gate): each open file brings the key of the renewal current at its open, write-back stores
// with the first key of the open files still valid, in open order (fs/afs/file.c
// afs_cache_wb_key, fs/afs/write.c afs_get_writeback_key), and a store with no valid key does
// what Linux 6.12's netfs write-back did in the Xen AFS expiry case: the pages end clean, the
// server never gets them, and fsync returns 0. A close stores what is dirty first (afs_release
// fsyncs a writable file). No local file system drops data like this, hence this double.
import type { BlockFile, IoCallback } from '../../src/engine/block-file';

const PAGE = 4096;

export class KeyedFile implements BlockFile {
  readonly readOnly = false;
  readonly canDiscard = false;
  readonly path = '/afs/cell/keyed.img';
  /** What the file server holds. */
  readonly stored: Buffer;
  /** The client's page cache. */
  private readonly cache: Buffer;
  private readonly dirty = new Set<number>();
  /** The key a new open gets (renew's latest renewal). */
  latestKey = 1;
  /** Keys that have lapsed. */
  readonly lapsed = new Set<number>();
  /** The keys of the open files, in open order. */
  private keys: number[];
  /** Pages a store without a valid key threw away, and the keys stores used. */
  droppedPages = 0;
  readonly storedWith: number[] = [];
  reopens = 0;

  constructor(readonly size: number) {
    this.stored = Buffer.alloc(size);
    this.cache = Buffer.alloc(size);
    this.keys = [this.latestKey];
  }

  read(buf: Uint8Array, offset: number, cb: IoCallback): void {
    buf.set(this.cache.subarray(offset, offset + buf.length));
    setImmediate(cb, null);
  }

  write(buf: Uint8Array, offset: number, cb: IoCallback): void {
    this.cache.set(buf, offset);
    for (let p = Math.floor(offset / PAGE); p * PAGE < offset + buf.length; p++) this.dirty.add(p);
    setImmediate(cb, null);
  }

  fsync(cb: IoCallback): void {
    setImmediate(() => {
      this.writeback();
      cb(null);
    });
  }

  /** The kernel's write-back (a flusher thread, or an fsync): with the first valid key. */
  writeback(): void {
    const key = this.keys.find((k) => !this.lapsed.has(k));
    for (const p of this.dirty) {
      const at = p * PAGE;
      if (key === undefined) this.droppedPages++;
      else this.cache.copy(this.stored, at, at, Math.min(at + PAGE, this.size));
    }
    if (this.dirty.size > 0 && key !== undefined) this.storedWith.push(key);
    this.dirty.clear();
  }

  discard(_offset: number, _length: number, cb: IoCallback): void {
    cb(Object.assign(new Error('no discard'), { code: 'EOPNOTSUPP' }));
  }

  /** Image.reopen's order: the new open file (latest key) first, then the old one closed. */
  reopen(cb: IoCallback): void {
    this.reopens++;
    this.keys.push(this.latestKey);
    this.writeback();
    this.keys.shift();
    setImmediate(cb, null);
  }

  /** Bytes of page `page` on the server. */
  storedPage(page: number): Uint8Array {
    return new Uint8Array(this.stored.subarray(page * PAGE, (page + 1) * PAGE));
  }

  close(): void {
    this.writeback();
  }
}
