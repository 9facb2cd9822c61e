// The simulated event-channel wire between a guest process and a backend process: fixed
// 12-byte frames { type, a, b } (u32 little-endian) over a unix socket. The guest listens on
// <sim dir>/dom<domid>.sock; its memory is <sim dir>/dom<domid>.mem (see sim/guest-memory.ts).
import * as path from 'node:path';

export const FRAME = 12;

export const Msg = {
  /** backend → guest, a = backend domid. */
  HELLO: 1,
  /** guest → backend, a = guest domid. */
  HELLO_ACK: 2,
  /** backend → guest, a = request id, b = guest port. */
  BIND: 3,
  /** guest → backend, a = request id. */
  BIND_OK: 4,
  /** guest → backend, a = request id, b = 1 (no such unbound port for this domain). */
  BIND_ERR: 5,
  /** backend → guest, b = guest port. */
  UNBIND: 6,
  /** either way, b = guest port. */
  NOTIFY: 7,
  /**
   * backend → guest, b = guest port: the backend unmasked the port. A NOTIFY delivered to a
   * backend masks its port until then (as /dev/xen/evtchn does at the upcall), and the guest
   * side keeps further ones as Xen's pending bit does: one NOTIFY follows the UNMASK if any
   * came meanwhile. So a guest notifying in a loop costs a masked backend nothing, as on Xen.
   */
  UNMASK: 8,
} as const;

/** The env var (and worker option --sim-dir) that tells a backend process where sim guests live. */
export const SIM_DIR_ENV = 'AFSFILE_SIM_DIR';

/** sizeof(sockaddr_un.sun_path) - 1 on Linux. */
const SUN_PATH_MAX = 107;

export function socketPath(dir: string, domid: number): string {
  const p = path.join(dir, `dom${domid}.sock`);
  if (Buffer.byteLength(p) > SUN_PATH_MAX)
    throw new Error(
      `${p}: longer than a unix socket path may be (${SUN_PATH_MAX} bytes); use a shorter ${SIM_DIR_ENV} / --sim-dir`,
    );
  return p;
}
export function memoryPath(dir: string, domid: number): string {
  return path.join(dir, `dom${domid}.mem`);
}

export function frame(type: number, a = 0, b = 0): Buffer {
  const f = Buffer.alloc(FRAME);
  f.writeUInt32LE(type, 0);
  f.writeUInt32LE(a >>> 0, 4);
  f.writeUInt32LE(b >>> 0, 8);
  return f;
}

/** Splits a byte stream into frames. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);
  constructor(private readonly onFrame: (type: number, a: number, b: number) => void) {}

  push(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let off = 0;
    while (this.pending.length - off >= FRAME) {
      this.onFrame(
        this.pending.readUInt32LE(off),
        this.pending.readUInt32LE(off + 4),
        this.pending.readUInt32LE(off + 8),
      );
      off += FRAME;
    }
    this.pending = this.pending.subarray(off);
  }
}
