// The image file: open with checks, size, positional I/O, fsync, hole punching.
// The data path uses callback-style fs calls (no promise per request).
import * as fs from 'node:fs';
import { native, withErrnoCode } from '../native/addon';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from '../native/types';

export const SECTOR = 512;

export interface OpenOptions {
  readonly readOnly: boolean;
  /** O_DIRECT: buffers and offsets must then be 4096-aligned. */
  readonly direct?: boolean;
}

export type IoCallback = (err: NodeJS.ErrnoException | null) => void;

/** Why an image cannot be served, phrased for the administrator. */
export class ImageError extends Error {
  constructor(readonly image: string, readonly why: string, readonly code?: string) {
    super(`${image}: ${why}`);
    this.name = 'ImageError';
  }
}

export class Image {
  private constructor(
    readonly path: string,
    readonly fd: number,
    readonly size: number,
    readonly readOnly: boolean,
    readonly direct: boolean,
    readonly canDiscard: boolean,
    readonly dev: number,
    readonly ino: number,
    /** The file opened (symlinks resolved), for telling two names of one image apart. */
    readonly realpath: string,
  ) {}

  /** Opens and checks an image: a regular file, a whole number of sectors, the right access. */
  static open(path: string, opts: OpenOptions): Image {
    let real: string;
    try {
      checkStat(path, fs.statSync(path));
      real = fs.realpathSync(path);
    } catch (err) {
      throw err instanceof ImageError ? err : explain(path, err as NodeJS.ErrnoException, 'stat');
    }
    let fd: number;
    try {
      fd = fs.openSync(real, openFlags(opts));
    } catch (err) {
      throw explain(path, err as NodeJS.ErrnoException, 'open');
    }
    return Image.adopt(fd, path, real, opts);
  }

  /**
   * Image.open without blocking the event loop: the supervisor opens images of every guest,
   * and an open on a hung file server must stall only that device's hotplug, not the others.
   */
  static async openAsync(path: string, opts: OpenOptions): Promise<Image> {
    let real: string;
    try {
      checkStat(path, await fs.promises.stat(path));
      real = await fs.promises.realpath(path);
    } catch (err) {
      throw err instanceof ImageError ? err : explain(path, err as NodeJS.ErrnoException, 'stat');
    }
    let fd: number;
    try {
      // The callback form gives a bare fd: a FileHandle would close it on garbage collection.
      fd = await new Promise<number>((resolve, reject) => fs.open(real, openFlags(opts), (e, n) => (e ? reject(e) : resolve(n))));
    } catch (err) {
      throw explain(path, err as NodeJS.ErrnoException, 'open');
    }
    return Image.adopt(fd, path, real, opts);
  }

  /**
   * An image another process opened and checked (the supervisor hands its fd to the device
   * process): checked again here, as it may have changed in between.
   */
  static fromFd(fd: number, path: string, opts: OpenOptions): Image {
    let real = path;
    try {
      real = fs.realpathSync(path);
    } catch {
      // The name may be gone (renamed while served); the fd is what counts.
    }
    return Image.adopt(fd, path, real, opts);
  }

  private static adopt(fd: number, path: string, real: string, opts: OpenOptions): Image {
    let fst: fs.Stats;
    try {
      fst = fs.fstatSync(fd);
      checkStat(path, fst);
    } catch (err) {
      fs.closeSync(fd);
      throw err instanceof ImageError ? err : explain(path, err as NodeJS.ErrnoException, 'stat');
    }
    let canDiscard = false;
    if (!opts.readOnly) {
      try {
        canDiscard = withErrnoCode(() => native().canPunchHole(fd));
      } catch {
        canDiscard = false;
      }
    }
    return new Image(path, fd, fst.size, opts.readOnly, opts.direct === true, canDiscard, fst.dev, fst.ino, real);
  }

  /** Reads exactly buf.length bytes at offset (a short read past EOF is an error). */
  read(buf: Uint8Array, offset: number, cb: IoCallback): void {
    this.io(false, buf, 0, buf.length, offset, cb);
  }

  /** Writes exactly buf.length bytes at offset. */
  write(buf: Uint8Array, offset: number, cb: IoCallback): void {
    if (this.readOnly) return cb(Object.assign(new Error('image is read-only'), { code: 'EROFS' }));
    this.io(true, buf, 0, buf.length, offset, cb);
  }

  private io(write: boolean, buf: Uint8Array, at: number, len: number, offset: number, cb: IoCallback): void {
    const done = (err: NodeJS.ErrnoException | null, n: number) => {
      if (err) return cb(err);
      if (n === len) return cb(null);
      if (n === 0) return cb(Object.assign(new Error(`short ${write ? 'write' : 'read'} at ${offset}`), { code: 'EIO' }));
      this.io(write, buf, at + n, len - n, offset + n, cb);
    };
    if (write) fs.write(this.fd, buf, at, len, offset, done);
    else fs.read(this.fd, buf, at, len, offset, done);
  }

  fsync(cb: IoCallback): void {
    fs.fdatasync(this.fd, cb);
  }

  /** Punches a hole (never zero-fills): only called when canDiscard. */
  discard(offset: number, length: number): void {
    withErrnoCode(() => native().fallocate(this.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length));
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

function openFlags(opts: OpenOptions): number {
  // The path was resolved by realpath; O_NOFOLLOW then refuses a symlink swapped in meanwhile.
  return (opts.readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR) | fs.constants.O_NOFOLLOW |
    (opts.direct ? fs.constants.O_DIRECT : 0);
}

function checkStat(path: string, st: fs.Stats): void {
  if (st.isDirectory()) throw new ImageError(path, 'is a directory, not an image file', 'EISDIR');
  if (!st.isFile()) throw new ImageError(path, 'is not a regular file (afsfile serves image files; use the default block script for devices)', 'EINVAL');
  if (st.size % SECTOR !== 0) throw new ImageError(path, `size ${st.size} is not a multiple of ${SECTOR} bytes; pad it (truncate -s %512 FILE)`, 'EINVAL');
  if (st.size === 0) throw new ImageError(path, 'is empty; make one with `afsfile create PATH --size N`', 'EINVAL');
}

function explain(path: string, err: NodeJS.ErrnoException, op: string): ImageError {
  switch (err.code) {
    case 'ENOENT': return new ImageError(path, 'does not exist (check the target= path in the disk spec)', err.code);
    case 'EACCES': case 'EPERM': return new ImageError(path, `permission denied on ${op} (on AFS: check the ACL and that the worker holds tokens)`, err.code);
    case 'EROFS': return new ImageError(path, 'is on a read-only file system; attach it with access=ro', err.code);
    case 'ELOOP': return new ImageError(path, 'has too many levels of symbolic links', err.code);
    case 'ETIMEDOUT': return new ImageError(path, 'timed out (file server unreachable?)', err.code);
    default: return new ImageError(path, `${op} failed: ${err.message}`, err.code);
  }
}
