// Opening the image named by the backend's params, in the device child (inside the PAG). Every
// failure becomes one sentence for afsfile-error: it names the image, what is wrong and the fix.
import * as fs from 'node:fs';
import { SECTOR_SIZE } from '../blkif/constants';
import { imagePath, isWritable } from './params';

export interface OpenedImage {
  readonly path: string;
  readonly fd: number;
  readonly writable: boolean;
  readonly size: number;
}

export function openImage(params: string | undefined, mode: string | undefined): OpenedImage | { error: string } {
  const p = imagePath(params);
  if ('error' in p) return p;
  const writable = isWritable(mode);
  let st: fs.Stats;
  try {
    st = fs.statSync(p.path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { error: `image ${p.path} does not exist: create it with 'afsfile create ${p.path} --size N'` };
    if (code === 'EACCES') return { error: `image ${p.path}: permission denied (for AFS: are the worker's tokens valid? see 'afsfile check')` };
    return { error: `image ${p.path}: ${code ?? (e as Error).message}` };
  }
  if (st.isDirectory()) return { error: `image ${p.path} is a directory; target= must name a regular file or block device` };
  if (!st.isFile() && !st.isBlockDevice()) return { error: `image ${p.path} is not a regular file or block device` };
  let fd: number;
  try {
    fd = fs.openSync(p.path, writable ? fs.constants.O_RDWR : fs.constants.O_RDONLY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const hint = code === 'EACCES' || code === 'EROFS' ? (writable ? '; give access=ro or fix the file\'s permissions' : '') : '';
    return { error: `image ${p.path}: cannot open ${writable ? 'read-write' : 'read-only'}: ${code ?? (e as Error).message}${hint}` };
  }
  const size = fs.fstatSync(fd).size;
  if (st.isFile() && (size === 0 || size % SECTOR_SIZE !== 0)) {
    fs.closeSync(fd);
    return { error: `image ${p.path} is ${size} bytes; its size must be a non-zero multiple of ${SECTOR_SIZE}` };
  }
  return { path: p.path, fd, writable, size };
}
