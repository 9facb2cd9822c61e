// How the supervisor starts another copy of itself: the single executable is process.execPath
// alone; from the source tree (node build/src/main.js) it is node plus the script.
import * as path from 'node:path';

function isSingleExecutable(): boolean {
  try {
    // node:sea exists from Node 20.12 / 21.7; older or non-SEA builds answer false.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sea = require('node:sea') as { isSea(): boolean };
    return sea.isSea();
  } catch {
    return false;
  }
}

/** The command and leading arguments that run this program again. */
export function selfCommand(): { command: string; args: string[] } {
  if (isSingleExecutable()) return { command: process.execPath, args: [] };
  const script = process.argv[1];
  if (!script) return { command: process.execPath, args: [] };
  const flags = process.execArgv.filter((a) => !a.startsWith('--inspect'));
  return { command: process.execPath, args: [...flags, path.resolve(script)] };
}
