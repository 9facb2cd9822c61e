// The file both fio and the engine work on: fully written (no holes, which would read as
// free zeros), synced, in a private temp directory that is removed afterwards.
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface WorkFile {
  readonly path: string;
  readonly size: number;
  /** Reads the whole file, so a buffered run starts from the page cache whatever ran before
   * (O_DIRECT writes of another variant invalidate the cached pages they touch). */
  warm(): void;
  remove(): void;
}

export function makeWorkFile(dir: string, size: number): WorkFile {
  const tmp = fs.mkdtempSync(path.join(dir, 'afsfile-bench-'));
  const file = path.join(tmp, 'bench.img');
  const chunk = new Uint8Array(1 << 20);
  randomFillSync(chunk);
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    for (let at = 0; at < size; at += chunk.length) {
      chunk[0] = at >>> 20; // every MiB differs, so nothing below can dedupe or compress it away
      fs.writeSync(fd, chunk, 0, Math.min(chunk.length, size - at), at);
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return { path: file, size, warm: () => readAll(file), remove: () => fs.rmSync(tmp, { recursive: true, force: true }) };
}

function readAll(file: string): void {
  const buf = new Uint8Array(1 << 20);
  const fd = fs.openSync(file, 'r');
  try {
    while (fs.readSync(fd, buf, 0, buf.length, null) > 0);
  } finally {
    fs.closeSync(fd);
  }
}
