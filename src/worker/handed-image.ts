// The image the supervisor opened, handed to the device process as an inherited fd. The
// environment says which fd, for which path and access, so that the child uses it only for
// the image the backend still names (libxl rewrites params on a CD-ROM media change).
import * as fs from 'node:fs';
import { Image } from '../image/image';

const FD = 'AFSFILE_IMAGE_FD';
const PATH = 'AFSFILE_IMAGE_PATH';
const ACCESS = 'AFSFILE_IMAGE_ACCESS';

/** The environment of a child that gets the image at `fd` (or none: `file` undefined). */
export function handedImageEnv(env: NodeJS.ProcessEnv, file?: { fd: number; path: string; readOnly: boolean }): NodeJS.ProcessEnv {
  const out = { ...env };
  delete out[FD];
  delete out[PATH];
  delete out[ACCESS];
  if (file) Object.assign(out, { [FD]: String(file.fd), [PATH]: file.path, [ACCESS]: file.readOnly ? 'ro' : 'rw' });
  return out;
}

export interface HandedImage {
  readonly fd: number;
  readonly path: string;
  readonly readOnly: boolean;
}

/** The handed image described by env, if any (a device process started by hand has none). */
export function handedImage(env: NodeJS.ProcessEnv): HandedImage | undefined {
  const fd = Number(env[FD]);
  const path = env[PATH];
  const access = env[ACCESS];
  if (!Number.isInteger(fd) || fd < 3 || !path || (access !== 'ro' && access !== 'rw')) return undefined;
  return { fd, path, readOnly: access === 'ro' };
}

/**
 * Opens the device's image: the handed fd when it is the file this path names, with this
 * access; else by path. A handed fd that is not used is closed.
 */
export function openImageFor(
  handed: HandedImage | undefined, path: string, readOnly: boolean, direct: boolean, roots: readonly string[] = [],
): Image {
  if (handed && handed.path === path && handed.readOnly === readOnly && sameFile(handed.fd, path)) {
    return Image.fromFd(handed.fd, path, { readOnly, direct });
  }
  if (handed) closeQuietly(handed.fd);
  return Image.open(path, { readOnly, direct, roots });
}

function sameFile(fd: number, path: string): boolean {
  try {
    const a = fs.fstatSync(fd);
    const b = fs.statSync(path);
    return a.isFile() && a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

function closeQuietly(fd: number): void {
  try {
    // Only a file: a stale environment must not make us close someone else's socket or pipe.
    if (fs.fstatSync(fd).isFile()) fs.closeSync(fd);
  } catch {
    // Not an open fd: nothing to close.
  }
}
