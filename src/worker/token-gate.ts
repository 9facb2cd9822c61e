// No fsync of an AFS image with an expired token. kAFS of Linux 6.1 dereferences NULL in
// afs_store_data when it stores with an expired key (the process dies, the dom0 may not
// recover), and the OpenAFS cache manager retries a store refused for an expired token as
// anonymous and then discards the dirty chunks (src/afs/afs_analyze.c). So while renew.json
// says that a token the worker holds has expired (or will within GATE_MARGIN_MS), an fsync of
// an image on AFS is answered EKEYEXPIRED without reaching the kernel: a transient error, so
// the engine holds the FLUSH, keeps the written data and writes it again through a reopened
// file once renew has new tokens (src/engine/durability.ts). Images outside AFS are not gated.
import * as fs from 'node:fs';
import { type RenewStatusRead, readRenewStatus } from '../renew/status';
import type { DeviceImage } from './device';

/** statfs f_type of AFS, the same for kAFS and the OpenAFS client (Linux include/uapi/linux/magic.h AFS_FS_MAGIC). */
export const AFS_FS_MAGIC = 0x6b414653;
/** The OpenAFS client's f_type (Linux include/uapi/linux/magic.h AFS_SUPER_MAGIC; coreutils stat S_MAGIC_AFS). */
export const OPENAFS_VFSMAGIC = 0x5346414f;
/** A store started this close to expiry may outlast the token. */
export const GATE_MARGIN_MS = 10_000;
/** renew.json is read at most this often (fsyncs can come per guest FLUSH). */
const READ_EVERY_MS = 1000;

/** True when `path` is on an AFS file system (either client). */
export function onAfs(path: string): boolean {
  try {
    const t = Number(fs.statfsSync(path).type);
    return t === AFS_FS_MAGIC || t === OPENAFS_VFSMAGIC;
  } catch {
    return false;
  }
}

/**
 * Why a store must not be attempted now, or undefined. A token counts as expired at its own
 * ISO expiry (OpenAFS `tokens`) or, for a kAFS key ("present": keyctl shows no expiry), at the
 * expiry of the ticket it was made from, which is the key's. Without renew, or with renew not
 * managing tokens, nothing is gated.
 */
export function expiredToken(r: RenewStatusRead, nowMs: number): string | undefined {
  if (r.kind !== 'ok' || !r.status.managed) return undefined;
  const s = r.status;
  for (const [cell, exp] of Object.entries(s.tokenExpires ?? {})) {
    const at = exp === 'expired' ? 0 : Date.parse(exp === 'present' ? s.ticketExpires ?? '' : exp);
    if (!Number.isFinite(at)) continue;
    if (at <= nowMs + GATE_MARGIN_MS) {
      const when = at === 0 ? 'has expired' : `${at <= nowMs ? 'expired' : 'expires'} at ${new Date(at).toISOString()}`;
      return `the AFS token for ${cell} ${when}${r.alive ? '' : ' and renew is not running'}`;
    }
  }
  return undefined;
}

export type GateCheck = () => string | undefined;

/** The check of one worker's run dir, reading renew.json at most once a second. */
export function renewTokenCheck(runDir: string, now: () => number = Date.now): GateCheck {
  let readAt = -Infinity;
  let last: RenewStatusRead = { kind: 'absent' };
  return () => {
    const t = now();
    if (t - readAt >= READ_EVERY_MS) {
      last = readRenewStatus(runDir);
      readAt = t;
    }
    return expiredToken(last, t);
  };
}

/**
 * Gates the image's fsync with `check` when it is on AFS (`isAfs`, default statfs); returns the
 * same image. `onRefused` hears each refusal (the worker logs it once and kicks renew).
 */
export function gateFsync(img: DeviceImage, check: GateCheck, isAfs: (path: string) => boolean = onAfs): DeviceImage {
  if (img.readOnly || !isAfs(img.path)) return img;
  const fsync = img.fsync.bind(img);
  img.fsync = (cb) => {
    const why = check();
    if (why === undefined) return fsync(cb);
    const err: NodeJS.ErrnoException = new Error(`fsync not attempted: ${why}`);
    err.code = 'EKEYEXPIRED';
    err.syscall = 'fsync';
    setImmediate(cb, err);
  };
  return img;
}
