// The disk spec as libxl writes it into the backend dir: `params` (the target, verbatim) and
// `mode`. Only syntax is judged here: the hotplug script runs outside the worker's PAG and must
// not judge an AFS file itself.
import * as path from 'node:path';

/** Prefixes accepted in front of the path: ours, and libxl's for tap backends (params=aio:PATH). */
const PREFIXES = ['afsfile:', 'aio:'];

export type Mode = 'r' | 'w';

export interface DiskSpec {
  image: string;
  mode: Mode;
}

export class SpecError extends Error {}

/** The image path in params: prefixes stripped; must be absolute and normalized. */
export function imagePath(params: string): string {
  let p = params.trim();
  for (const prefix of PREFIXES) if (p.startsWith(prefix)) p = p.slice(prefix.length);
  return p;
}

export function parseDiskSpec(params: string | undefined, mode: string | undefined): DiskSpec {
  if (params === undefined || params.trim() === '') throw new SpecError('no params (target=) in the disk spec; give target=/path/to/image');
  const image = imagePath(params);
  if (!path.isAbsolute(image)) throw new SpecError(`image path "${image}" is not absolute; give target=/full/path/to/image`);
  if (image.includes('\0') || /[\n\r]/.test(image)) throw new SpecError('image path contains control characters');
  if (image.endsWith('/')) throw new SpecError(`image path "${image}" names a directory; give the image file`);
  const m = (mode ?? '').trim();
  // libxl writes r or w (libxl_disk.c: "w" or "r" from disk->readwrite), and the worker takes
  // only those: accepting Xen's other spellings (ro, rw, w!) here would only move the refusal
  // to the worker, after the wait.
  if (m === 'r') return { image: path.normalize(image), mode: 'r' };
  if (m === 'w') return { image: path.normalize(image), mode: 'w' };
  throw new SpecError(`mode "${m}" is not r or w; use access=ro or access=rw in the disk spec`);
}
