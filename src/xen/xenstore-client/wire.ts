// The XenStore wire format (xen.git xen/include/public/io/xs_wire.h; docs/misc/xenstore.txt).
// One frame = a 16-byte header (type, req_id, tx_id,
// len: u32 each, host-endian, i.e. little-endian on every platform Xen dom0 runs on) + len bytes.

/** enum xsd_sockmsg_type (xs_wire.h). */
export const XsType = {
  CONTROL: 0,
  DIRECTORY: 1,
  READ: 2,
  GET_PERMS: 3,
  WATCH: 4,
  UNWATCH: 5,
  TRANSACTION_START: 6,
  TRANSACTION_END: 7,
  INTRODUCE: 8,
  RELEASE: 9,
  GET_DOMAIN_PATH: 10,
  WRITE: 11,
  MKDIR: 12,
  RM: 13,
  SET_PERMS: 14,
  WATCH_EVENT: 15,
  ERROR: 16,
  IS_DOMAIN_INTRODUCED: 17,
  RESUME: 18,
  SET_TARGET: 19,
  RESET_WATCHES: 21,
  DIRECTORY_PART: 22,
} as const;

export type XsTypeValue = (typeof XsType)[keyof typeof XsType];

export function typeName(t: number): string {
  return Object.entries(XsType).find(([, v]) => v === t)?.[0] ?? `type ${t}`;
}

export const HEADER_SIZE = 16;
/** XENSTORE_PAYLOAD_MAX (xs_wire.h): larger frames get the connection killed, so refuse locally. */
export const PAYLOAD_MAX = 4096;
/** XENSTORE_ABS_PATH_MAX (xs_wire.h). */
export const ABS_PATH_MAX = 3072;

/** xsd_errors[] in xs_wire.h: the names xenstored sends in ERROR replies. */
export const ERRNO_NAMES: readonly string[] = [
  'EINVAL', 'EACCES', 'EEXIST', 'EISDIR', 'ENOENT', 'ENOMEM', 'ENOSPC', 'EIO', 'ENOTEMPTY',
  'ENOSYS', 'EROFS', 'EBUSY', 'EAGAIN', 'EISCONN', 'E2BIG', 'EPERM',
];

export interface Frame {
  readonly type: number;
  readonly reqId: number;
  readonly txId: number;
  readonly payload: Buffer;
}

export function encodeFrame(f: Frame): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_SIZE + f.payload.length);
  buf.writeUInt32LE(f.type, 0);
  buf.writeUInt32LE(f.reqId >>> 0, 4);
  buf.writeUInt32LE(f.txId >>> 0, 8);
  buf.writeUInt32LE(f.payload.length, 12);
  f.payload.copy(buf, HEADER_SIZE);
  return buf;
}

/** Accumulates a byte stream and yields whole frames. A header announcing more than
 * PAYLOAD_MAX means the stream is not XenStore (or is out of step): that is fatal. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames: Frame[] = [];
    while (this.buf.length >= HEADER_SIZE) {
      const len = this.buf.readUInt32LE(12);
      if (len > PAYLOAD_MAX)
        throw new Error(`xenstore: reply announces ${len} bytes (max ${PAYLOAD_MAX}): the stream is out of step`);
      if (this.buf.length < HEADER_SIZE + len) break;
      frames.push({
        type: this.buf.readUInt32LE(0),
        reqId: this.buf.readUInt32LE(4),
        txId: this.buf.readUInt32LE(8),
        payload: Buffer.from(this.buf.subarray(HEADER_SIZE, HEADER_SIZE + len)),
      });
      this.buf = this.buf.subarray(HEADER_SIZE + len);
    }
    return frames;
  }
}

/** Joins strings, each followed by a NUL (the `path|` shape of most requests). */
export function nulTerminated(...parts: string[]): Buffer {
  return Buffer.from(parts.map((p) => `${p}\0`).join(''), 'utf8');
}

/** Splits a `a|b|c|` payload into its strings (a missing final NUL is tolerated). */
export function splitNul(payload: Buffer): string[] {
  const text = payload.toString('utf8');
  const parts = text.split('\0');
  if (parts.length && parts[parts.length - 1] === '') parts.pop();
  return parts;
}
