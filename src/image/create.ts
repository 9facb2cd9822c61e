// Making a new image: sparse by default, fully allocated with --preallocate; never overwrites.
import * as fs from 'node:fs';
import { Progress } from '../util/progress';
import { SECTOR_SIZE } from '../blkif/constants';
import { ImageError } from './image';

export interface CreateOptions {
  readonly size: number;
  readonly preallocate: boolean;
  readonly quiet?: boolean;
}

const CHUNK = 8 * 1024 * 1024;

export function createImage(path: string, opts: CreateOptions): void {
  if (!Number.isSafeInteger(opts.size) || opts.size <= 0 || opts.size % SECTOR_SIZE !== 0)
    throw new ImageError(path, `size must be a positive multiple of ${SECTOR_SIZE} bytes, got ${opts.size}`, 'EINVAL');
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EEXIST') throw new ImageError(path, 'already exists; afsfile create never overwrites (remove it first)', e.code);
    throw new ImageError(path, `cannot create: ${e.message}`, e.code);
  }
  try {
    if (opts.preallocate) {
      // Written, not fallocate'd: AFS and some other file systems do not support fallocate,
      // and the administrator asked for the space to be really there.
      const zeros = Buffer.alloc(Math.min(CHUNK, opts.size));
      const progress = new Progress('allocating', opts.size, opts.quiet);
      for (let off = 0; off < opts.size; off += zeros.length) {
        const n = Math.min(zeros.length, opts.size - off);
        let w = 0;
        while (w < n) w += fs.writeSync(fd, zeros, w, n - w, off + w);
        progress.update(off + n);
      }
      fs.fsyncSync(fd);
      progress.done();
    } else {
      fs.ftruncateSync(fd, opts.size);
      fs.fsyncSync(fd);
    }
    fs.closeSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(path, { force: true });
    const e = err as NodeJS.ErrnoException;
    throw new ImageError(path, `cannot allocate ${opts.size} bytes: ${e.message}`, e.code);
  }
}
