// No store to AFS with an expired token. kAFS of Linux 6.1 dereferences NULL in
// afs_store_data when it stores with an expired key (the process dies, the dom0 may not
// recover); its write-back of dirty pages goes the same way as fsync. The OpenAFS cache manager
// retries a store refused for an expired token as anonymous and then discards the dirty chunks
// (src/afs/afs_analyze.c). So when renew.json says that a token the worker holds is about to
// lapse, an image on AFS first stops taking writes (WRITE_MARGIN_MS before expiry: they fail
// EKEYEXPIRED and the engine holds them) while fsyncs still store what is dirty with the valid
// key; from FSYNC_MARGIN_MS before expiry fsync is answered EKEYEXPIRED without reaching the
// kernel, so nothing is dirty and nothing is stored once the key has lapsed. The engine keeps
// the held data and writes it again through a reopened file once renew has new tokens
// (src/engine/durability.ts). Images outside AFS are not gated.
import * as fs from 'node:fs';
import createDebug from 'debug';
import { isTransient } from '../engine/transient';
import { type RenewStatusRead, readRenewStatus } from '../renew/status';
import type { DeviceImage } from './device';
import type { KeyEpoch } from './key-epoch';

/** statfs f_type of AFS, the same for kAFS and the OpenAFS client (Linux include/uapi/linux/magic.h AFS_FS_MAGIC). */
export const AFS_FS_MAGIC = 0x6b414653;
/** The OpenAFS client's f_type (Linux include/uapi/linux/magic.h AFS_SUPER_MAGIC; coreutils stat S_MAGIC_AFS). */
export const OPENAFS_VFSMAGIC = 0x5346414f;
/** Writes stop this long before a token lapses: what is dirty then is stored while it is valid. */
export const WRITE_MARGIN_MS = 30_000;
/** fsync stops this long before: a store started later may outlast the token. */
export const FSYNC_MARGIN_MS = 10_000;
/** The margins of one device process; the write margin never below the fsync margin. */
export interface TokenMargins { readonly writeMs: number; readonly fsyncMs: number }
/** Environment variable: seconds before expiry from which writes are held (default 30). */
export const WRITE_MARGIN_ENV = 'AFSFILE_TOKEN_WRITE_MARGIN';

/**
 * The margins, with AFSFILE_TOKEN_WRITE_MARGIN (whole seconds, from the fsync margin's 10 up to
 * 3600) replacing the write margin. A smaller one lets writes go on closer to expiry; what is
 * still dirty when the fsync margin begins is then held by the fsync gate and written again
 * after the renewal (the Xen AFS expiry stage uses 10 to make that happen). Anything else: the default.
 */
export function tokenMargins(env: NodeJS.ProcessEnv): TokenMargins {
  const v = env[WRITE_MARGIN_ENV];
  const s = v !== undefined && /^[0-9]{1,4}$/.test(v) ? Number(v) * 1000 : NaN;
  const writeMs = s >= FSYNC_MARGIN_MS && s <= 3600_000 ? s : WRITE_MARGIN_MS;
  return { writeMs, fsyncMs: FSYNC_MARGIN_MS };
}

/** renew.json is read at most this often (fsyncs can come per guest FLUSH). */
const READ_EVERY_MS = 1000;

const log = createDebug('afsfile:device');

/** True when `path` is on an AFS file system (either client). */
export function onAfs(path: string): boolean {
  try {
    const t = Number(fs.statfsSync(path).type);
    const afs = t === AFS_FS_MAGIC || t === OPENAFS_VFSMAGIC;
    log('%s: statfs type 0x%s: %s', path, t.toString(16), afs ? 'AFS, stores gated by the token' : 'not AFS');
    return afs;
  } catch (e) {
    log('%s: statfs failed (%s): stores not gated', path, (e as NodeJS.ErrnoException).code ?? (e as Error).message);
    return false;
  }
}

/**
 * The token that lapses first, if any lapses within `marginMs`: a message, or undefined. A token
 * counts as lapsed at its own ISO expiry (OpenAFS `tokens`) or, for a kAFS key ("present":
 * keyctl shows no expiry), at the expiry of the ticket it was made from, which is the key's.
 * Without renew, or with renew not managing tokens, nothing lapses.
 */
export function expiredToken(r: RenewStatusRead, nowMs: number, marginMs = FSYNC_MARGIN_MS): string | undefined {
  if (r.kind !== 'ok' || !r.status.managed) return undefined;
  const s = r.status;
  for (const [cell, exp] of Object.entries(s.tokenExpires ?? {})) {
    const at = exp === 'expired' ? 0 : Date.parse(exp === 'present' ? s.ticketExpires ?? '' : exp);
    if (!Number.isFinite(at)) continue;
    if (at <= nowMs + marginMs) {
      const when = at === 0 ? 'has expired' : `${at <= nowMs ? 'expired' : 'expires'} at ${new Date(at).toISOString()}`;
      return `the AFS token for ${cell} ${when}${r.alive ? '' : ' and renew is not running'}`;
    }
  }
  return undefined;
}

/** When the first of the tokens lapses (ms), as expiredToken reads them; undefined: none known. */
export function tokenExpiry(r: RenewStatusRead): number | undefined {
  if (r.kind !== 'ok' || !r.status.managed) return undefined;
  const s = r.status;
  let first: number | undefined;
  for (const exp of Object.values(s.tokenExpires ?? {})) {
    const at = exp === 'expired' ? 0 : Date.parse(exp === 'present' ? s.ticketExpires ?? '' : exp);
    if (Number.isFinite(at) && (first === undefined || at < first)) first = at;
  }
  return first;
}

/** Why an operation must not be attempted now, or undefined. */
export type GateCheck = (op: 'write' | 'fsync') => string | undefined;

/** renew.json (or an identity's status file) read at most once a second, or now when asked. */
export class RenewWatch {
  private readAt = -Infinity;
  private last: RenewStatusRead = { kind: 'absent' };

  constructor(
    private readonly runDir: string,
    private readonly now: () => number = Date.now,
    private readonly statusName?: string,
  ) {}

  read(fresh = false): RenewStatusRead {
    const t = this.now();
    if (fresh || t - this.readAt >= READ_EVERY_MS) {
      this.last = readRenewStatus(this.runDir, this.statusName);
      this.readAt = t;
    }
    return this.last;
  }

  /**
   * The last renewal, as "N, renew pid P": a restarted renew counts from 0 again, and its
   * renewals are new keys all the same. Undefined when no live renew manages the tokens.
   */
  renewal(fresh = false): string | undefined {
    const r = this.read(fresh);
    if (r.kind !== 'ok' || !r.alive || !r.status.managed) return undefined;
    return typeof r.status.renewals === 'number' ? `${r.status.renewals}, renew pid ${r.status.pid}` : undefined;
  }

  /** When the tokens in force now lapse (tokenExpiry). */
  expiry(): number | undefined {
    return tokenExpiry(this.read(true));
  }

  /** The token expiry check of the margins (see expiredToken). */
  check(margins: TokenMargins = { writeMs: WRITE_MARGIN_MS, fsyncMs: FSYNC_MARGIN_MS }): GateCheck {
    return (op) => expiredToken(this.read(), this.now(), op === 'write' ? margins.writeMs : margins.fsyncMs);
  }
}

/** The check of one worker's run dir, reading renew.json at most once a second. */
export function renewTokenCheck(
  runDir: string, now: () => number = Date.now, statusName?: string,
  margins: TokenMargins = { writeMs: WRITE_MARGIN_MS, fsyncMs: FSYNC_MARGIN_MS },
): GateCheck {
  return new RenewWatch(runDir, now, statusName).check(margins);
}

/**
 * EKEYEXPIRED for a lapsing token (the worker asks renew for new tokens); EAGAIN while the image
 * waits for its reopen after a renewal: tokens are fresh then, and a renewal asked for by that
 * hold would only start the next reopen (one every 30 s while the guest writes).
 */
function refused(op: 'write' | 'fsync', why: string, code: 'EKEYEXPIRED' | 'EAGAIN'): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${op} not attempted: ${why}`);
  err.code = code;
  err.syscall = op;
  return err;
}

/**
 * Gates the image's writes and fsync with `check` when it is on AFS (`isAfs`, default statfs),
 * and with `epoch` (a renewal the open file predates); returns the same image, whose reopen()
 * then tells the epoch. Reads are not gated: they store nothing.
 */
export function gateStores(
  img: DeviceImage, check: GateCheck, isAfs: (path: string) => boolean = onAfs, epoch?: KeyEpoch,
): DeviceImage {
  if (img.readOnly || !isAfs(img.path)) return img;
  const fsync = img.fsync.bind(img);
  const write = img.write.bind(img);
  const reopen = img.reopen?.bind(img);
  if (epoch && reopen) {
    img.reopen = (cb) => {
      const n = epoch.before();
      reopen((err) => {
        // A reopen that cannot work (not a token or server problem): the old open file stays,
        // as it did before renewals were gated; a transient failure is tried again.
        if (!err || !isTransient(err.code, 'write')) epoch.opened(n);
        if (err) log('%s: reopen failed: %s', img.path, err.code ?? err.message);
        cb(err);
      });
    };
  }
  const gate = (op: 'write' | 'fsync'): NodeJS.ErrnoException | undefined => {
    const reopening = epoch?.check();
    const why = reopening ?? check(op);
    if (why === undefined) return undefined;
    log('%s: %s held: %s', img.path, op, why);
    return refused(op, why, reopening === undefined ? 'EKEYEXPIRED' : 'EAGAIN');
  };
  img.fsync = (cb) => {
    const err = gate('fsync');
    if (err === undefined) return fsync(cb);
    setImmediate(cb, err);
  };
  img.write = (buf, offset, cb) => {
    const err = gate('write');
    if (err === undefined) return write(buf, offset, cb);
    setImmediate(cb, err);
  };
  return img;
}
