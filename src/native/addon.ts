// Loads the native addon: from the single-executable asset when running as dist/afsfile,
// from build/native/afsfile.node when running from the source tree (tests, benchmarks).
//
// A shared object cannot be dlopen'ed from memory, so the asset is written to a private
// directory in an exec-capable runtime dir, loaded, and unlinked at once.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NativeAddon } from './types';
import { linuxErrnoName } from '../util/linux-errno';

let loaded: NativeAddon | undefined;

function runtimeDirs(): string[] {
  const dirs: string[] = [];
  const override = process.env.AFSFILE_RUNTIME_DIR;
  if (override) return [override];
  if (process.env.XDG_RUNTIME_DIR) dirs.push(process.env.XDG_RUNTIME_DIR);
  // /run and /dev/shm are often noexec; /tmp too. Try them in order and keep the first that works.
  dirs.push('/run', os.tmpdir(), '/var/tmp', '/dev/shm');
  return dirs;
}

function isSea(): boolean {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('node:sea') as { isSea(): boolean }).isSea();
  } catch {
    return false;
  }
}

function loadFromAsset(): NativeAddon {
  const sea = require('node:sea') as { getRawAsset(name: string): ArrayBuffer };
  const bytes = new Uint8Array(sea.getRawAsset('afsfile.node'));
  const failures: string[] = [];
  for (const base of runtimeDirs()) {
    let dir: string | undefined;
    try {
      dir = fs.mkdtempSync(path.join(base, 'afsfile-addon-'));
      const file = path.join(dir, 'afsfile.node');
      fs.writeFileSync(file, bytes, { mode: 0o500 });
      const mod = { exports: {} as NativeAddon };
      process.dlopen(mod, file, os.constants.dlopen.RTLD_NOW);
      return mod.exports;
    } catch (err) {
      failures.push(`${base}: ${(err as Error).message}`);
    } finally {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  throw new Error(`cannot load the native addon from any runtime dir (set AFSFILE_RUNTIME_DIR to an exec-capable directory): ${failures.join('; ')}`);
}

function loadFromTree(): NativeAddon {
  // build/src/native/addon.js → build/native/afsfile.node
  const candidates = [
    path.resolve(__dirname, '../../native/afsfile.node'),
    path.resolve(__dirname, '../../build/native/afsfile.node'),
  ];
  for (const file of candidates) {
    if (fs.existsSync(file)) {
      const mod = { exports: {} as NativeAddon };
      process.dlopen(mod, file, os.constants.dlopen.RTLD_NOW);
      return mod.exports;
    }
  }
  throw new Error(`native addon not built (looked in ${candidates.join(', ')}): run npm run build`);
}

export function native(): NativeAddon {
  if (!loaded) loaded = isSea() ? loadFromAsset() : loadFromTree();
  return loaded;
}

/** Turns an addon error (errno number) into a Node-style error with `code` = errno name. */
export function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(os.constants.errno)) if (value === errno) return name;
  return linuxErrnoName(errno) ?? `E${errno}`;
}

export function withErrnoCode<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (typeof e.errno === 'number' && e.code === undefined) e.code = errnoName(e.errno);
    throw e;
  }
}
