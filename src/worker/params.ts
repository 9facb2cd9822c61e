// Which backend dirs are ours (params and mode are read by ./device/params.ts).
import * as path from 'node:path';

export const HOTPLUG_SCRIPT = 'block-afsfile';

/** libxl writes script= as an absolute path; only the basename decides (facts §3.1). */
export function isOurScript(script: string | undefined): boolean {
  return script !== undefined && path.basename(script.trim()) === HOTPLUG_SCRIPT;
}
