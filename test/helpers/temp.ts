// Temp dirs for tests: every test's files live in one, removed however the test ends.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** A fresh temp dir removed by the returned cleanup (for fixtures that outlive one call). */
export function tempDir(prefix = 'afsfile-test-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  // maxRetries: ENOTEMPTY while a process the test ended is still writing its last file.
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }) };
}

/**
 * Runs fn in a fresh temp dir and removes the dir afterwards, also when fn throws. An async fn
 * gives a promise that settles after the removal.
 */
export function withTempDir<T>(fn: (dir: string) => T, prefix?: string): T {
  const { dir, cleanup } = tempDir(prefix);
  let r: T;
  try {
    r = fn(dir);
  } catch (err) {
    cleanup();
    throw err;
  }
  if (r instanceof Promise) return r.finally(cleanup) as T;
  cleanup();
  return r;
}

/** A sparse file of `size` bytes at dir/name (an empty image for attach tests); returns its path. */
export function sparseFile(dir: string, name: string, size = 1 << 20): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, Buffer.alloc(0));
  fs.truncateSync(p, size);
  return p;
}
