// The backend keys the toolstack wrote (params, mode), checked before anything is opened.
export class DeviceConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeviceConfigError';
  }
}

/** The image path from `params`: `afsfile:` or `aio:` stripped, absolute, no NUL. */
export function imagePathFromParams(params: string | undefined): string {
  if (params === undefined || params.trim() === '') throw new DeviceConfigError('backend key params is missing or empty (target= in the disk spec)');
  let p = params.trim();
  for (const prefix of ['afsfile:', 'aio:']) if (p.startsWith(prefix)) p = p.slice(prefix.length);
  if (p.includes('\0')) throw new DeviceConfigError('params contains a NUL byte');
  if (!p.startsWith('/')) throw new DeviceConfigError(`params must be an absolute path (after an optional afsfile: or aio: prefix), got ${JSON.stringify(p.slice(0, 200))}`);
  return p;
}

/** `mode`: r (read-only) or w. */
export function readOnlyFromMode(mode: string | undefined): boolean {
  const m = mode?.trim();
  if (m === 'r') return true;
  if (m === 'w') return false;
  throw new DeviceConfigError(`backend key mode must be r or w, got ${m === undefined ? 'nothing' : JSON.stringify(m.slice(0, 20))}`);
}

/** A strict unsigned decimal that fits u32, or undefined. */
export function parseU32(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (!/^\d{1,10}$/.test(t)) return undefined;
  const n = Number(t);
  return n <= 0xffffffff ? n : undefined;
}
