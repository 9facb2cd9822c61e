// An image file with the write-back of a network file system client, as a BlockFile: writes
// land in the file (the client's cache) and reach `stored` (the file server) only at a good
// fsync. A failed fsync throws the unstored writes away, as the OpenAFS cache manager does when
// a store fails with EACCES or over quota (src/afs/afs_segments.c afs_StoreAllSegments) and
// kAFS on EIO-class errors: the file reads the stored content again, and the next fsync
// succeeds with nothing to store. No real file system here drops data this way (ext4 and
// tmpfs keep it), hence this double.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BlockFile, IoCallback } from '../../src/engine/block-file';

const PAGE = 4096;

export class LossyFile implements BlockFile {
  readonly readOnly = false;
  readonly canDiscard = false;
  /** What the file server holds: survives a crash of the client. */
  readonly stored: Buffer;
  readonly path: string;
  /** Every operation in the order it started: "write@4096", "fsync", "reopen". */
  readonly log: string[] = [];
  reopens = 0;
  fsyncs = 0;
  /** Errors the next fsyncs fail with (each drops the unstored writes). */
  readonly failFsync: string[] = [];
  private fd: number;
  private readonly dirty = new Set<number>();

  constructor(dir: string, readonly size: number) {
    this.path = path.join(dir, `lossy-${process.pid}-${Math.random().toString(36).slice(2)}.img`);
    fs.writeFileSync(this.path, Buffer.alloc(size));
    this.stored = Buffer.alloc(size);
    this.fd = fs.openSync(this.path, 'r+');
  }

  static tempDir(): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), 'afsfile-lossy-'));
  }

  /** While set, reads started wait here before they read the file (releaseReads()). */
  pausedReads: (() => void)[] | null = null;

  read(buf: Uint8Array, offset: number, cb: IoCallback): void {
    this.log.push(`read@${offset}`);
    const go = (): void => fs.read(this.fd, buf, 0, buf.length, offset, (err, n) => cb(err ?? (n === buf.length ? null : Object.assign(new Error('short read'), { code: 'EIO' }))));
    if (this.pausedReads) this.pausedReads.push(go);
    else go();
  }

  releaseReads(): void {
    const reads = this.pausedReads ?? [];
    this.pausedReads = null;
    for (const go of reads) go();
  }

  write(buf: Uint8Array, offset: number, cb: IoCallback): void {
    this.log.push(`write@${offset}`);
    fs.write(this.fd, buf, 0, buf.length, offset, (err, n) => {
      if (!err && n === buf.length) for (let p = Math.floor(offset / PAGE); p * PAGE < offset + buf.length; p++) this.dirty.add(p);
      cb(err ?? (n === buf.length ? null : Object.assign(new Error('short write'), { code: 'EIO' })));
    });
  }

  fsync(cb: IoCallback): void {
    this.log.push('fsync');
    setImmediate(() => {
      const code = this.failFsync.shift();
      for (const p of this.dirty) {
        const at = p * PAGE;
        const len = Math.min(PAGE, this.size - at);
        if (code === undefined) fs.readSync(this.fd, this.stored, at, len, at);
        else fs.writeSync(this.fd, this.stored, at, len, at); // the cache drops the page
      }
      this.dirty.clear();
      if (code !== undefined) return cb(Object.assign(new Error(`fsync: ${code}`), { code }));
      this.fsyncs++;
      cb(null);
    });
  }

  discard(): void {
    throw Object.assign(new Error('no discard'), { code: 'EOPNOTSUPP' });
  }

  reopen(cb: IoCallback): void {
    this.log.push('reopen');
    this.reopens++;
    const old = this.fd;
    this.fd = fs.openSync(this.path, 'r+');
    fs.closeSync(old);
    setImmediate(() => cb(null));
  }

  /** What the client shows now (the cache, or the server where nothing is cached). */
  current(): Buffer {
    return fs.readFileSync(this.path);
  }

  close(): void {
    fs.closeSync(this.fd);
    fs.rmSync(this.path, { force: true });
  }
}
