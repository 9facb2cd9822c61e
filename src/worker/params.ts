// What the toolstack's backend keys say about the image, read the same way by the supervisor
// (exclusivity) and the device child (open). `params` is the disk spec's target verbatim
// (facts §2.2); an `afsfile:` or `aio:` prefix is accepted and stripped (facts §3.4, §3.5).
import * as path from 'node:path';

export const HOTPLUG_SCRIPT = 'block-afsfile';

/** libxl writes script= as an absolute path; only the basename decides (facts §3.1). */
export function isOurScript(script: string | undefined): boolean {
  return script !== undefined && path.basename(script.trim()) === HOTPLUG_SCRIPT;
}

/** The image path in `params`, or an error message for the administrator. */
export function imagePath(params: string | undefined): { path: string } | { error: string } {
  if (params === undefined || params.trim() === '') return { error: 'params is missing or empty: give target=/path/to/image in the disk spec' };
  let p = params.trim();
  for (const prefix of ['afsfile:', 'aio:']) if (p.startsWith(prefix)) p = p.slice(prefix.length);
  if (!p.startsWith('/')) return { error: `params ${JSON.stringify(params.slice(0, 200))} is not an absolute path: give target=/path/to/image` };
  if (p.includes('\0')) return { error: 'params contains a NUL byte' };
  return { path: path.normalize(p) };
}

/** mode=w is read-write; anything else (r, missing) is read-only, the safe reading. */
export function isWritable(mode: string | undefined): boolean {
  return mode?.trim() === 'w';
}
