// Which backend dirs are ours (params and mode are read by ./device/params.ts).
import * as path from 'node:path';

export const HOTPLUG_SCRIPT = 'block-afsfile';

/** libxl writes script= as an absolute path; only the basename decides (xen.git libxl_linux.c). */
export function isOurScript(script: string | undefined): boolean {
  return script !== undefined && path.basename(script.trim()) === HOTPLUG_SCRIPT;
}
