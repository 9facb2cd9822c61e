// Shared pieces of the Linux-platform tests: FIFOs standing in for /dev/xen/evtchn.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A FIFO opened at both ends: rfd non-blocking (as the evtchn fd is), wfd blocking. */
export function fifo(dir: string, name: string): { rfd: number; wfd: number; close(): void } {
  const p = path.join(dir, name);
  execFileSync('mkfifo', [p]);
  const rfd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const wfd = fs.openSync(p, fs.constants.O_WRONLY);
  let closed = false;
  return {
    rfd,
    wfd,
    close() {
      if (closed) return;
      closed = true;
      for (const fd of [rfd, wfd]) {
        try {
          fs.closeSync(fd);
        } catch {
          // already closed by the test
        }
      }
    },
  };
}

export function u32s(...ports: number[]): Uint8Array {
  return new Uint8Array(Uint32Array.from(ports).buffer);
}

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

/** A FIFO whose only reader is gone: its write end polls POLLERR for ever, read() is EBADF. */
export function brokenWriteEnd(dir: string): { fd: number; close(): void } {
  const f = fifo(dir, 'broken');
  fs.closeSync(f.rfd);
  return { fd: f.wfd, close: () => f.close() };
}
