// The IPC messages between a device process and the process that started it (the supervisor,
// or an identity's opener that passes them on). The device process opens its own image, inside
// the PAG it inherited, and reports what it opened; the supervisor, the one authority on
// exclusivity (DESIGN contracts, hotplug <-> worker 5), answers with the verdict. No process
// that starts device processes holds an image: an exec in a child closes every inherited
// descriptor, and on AFS or FUSE a close can store dirty data and hang.
//
// A spare device process ("ready") waits, already started, for the device it is to serve
// (`assign`), so that the hotplug script's wait never includes starting a process.

/** What a device process opened: the key of the exclusivity table, and how it opened it. */
export interface OpenedImage {
  readonly dev: number;
  readonly ino: number;
  readonly realpath: string;
  readonly image: string;
  readonly writable: boolean;
  /** The domain is a migration destination (its lock is taken when its guest connects). */
  readonly incoming?: boolean;
}

export type FromDevice =
  | { readonly t: 'ready' }
  | ({ readonly t: 'opened' } & OpenedImage)
  | { readonly t: 'open-failed'; readonly image: string | undefined; readonly message: string }
  /** After a good verdict, the image lock (src/image/lock.ts): taken (or adopted, or deferred
   * for a migration destination), or refused (busy: another host holds it). */
  | { readonly t: 'locked'; readonly ok: true }
  | { readonly t: 'locked'; readonly ok: false; readonly busy: boolean; readonly message: string };

export type ToDevice =
  | { readonly t: 'assign'; readonly backend: string; readonly args: readonly string[]; readonly restarts: number }
  | { readonly t: 'verdict'; readonly ok: true }
  | { readonly t: 'verdict'; readonly ok: false; readonly message: string };

const isObj = (m: unknown): m is Record<string, unknown> => typeof m === 'object' && m !== null;
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** A message from a device process, checked (a device process faces a guest: trust nothing). */
export function parseFromDevice(m: unknown): FromDevice | undefined {
  if (!isObj(m)) return undefined;
  if (m.t === 'ready') return { t: 'ready' };
  if (m.t === 'opened' && isNum(m.dev) && isNum(m.ino) && isStr(m.realpath) && isStr(m.image) &&
    typeof m.writable === 'boolean') {
    return {
      t: 'opened', dev: m.dev, ino: m.ino, realpath: m.realpath, image: m.image, writable: m.writable,
      ...(m.incoming === true ? { incoming: true } : {}),
    };
  }
  if (m.t === 'locked' && m.ok === true) return { t: 'locked', ok: true };
  if (m.t === 'locked' && m.ok === false && typeof m.busy === 'boolean' && isStr(m.message)) {
    return { t: 'locked', ok: false, busy: m.busy, message: m.message.slice(0, 1000) };
  }
  if (m.t === 'open-failed' && isStr(m.message) && (m.image === undefined || isStr(m.image))) {
    return { t: 'open-failed', image: m.image, message: m.message.slice(0, 1000) };
  }
  return undefined;
}

export function parseToDevice(m: unknown): ToDevice | undefined {
  if (!isObj(m)) return undefined;
  if (m.t === 'assign' && isStr(m.backend) && Array.isArray(m.args) && m.args.every(isStr) && isNum(m.restarts)) {
    return { t: 'assign', backend: m.backend, args: m.args, restarts: m.restarts };
  }
  if (m.t === 'verdict' && m.ok === true) return { t: 'verdict', ok: true };
  if (m.t === 'verdict' && m.ok === false && isStr(m.message)) return { t: 'verdict', ok: false, message: m.message };
  return undefined;
}
