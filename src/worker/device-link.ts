// The IPC messages between a device process and the process that started it (the supervisor,
// or an identity's opener that passes them on). The device process opens its own image, inside
// the PAG it inherited, and reports what it opened; the supervisor, the one authority on
// exclusivity (DESIGN contracts, hotplug <-> worker 5), answers with the verdict. No process
// that starts device processes holds an image: an exec in a child closes every inherited
// descriptor, and on AFS or FUSE a close can store dirty data and hang.
//
// A spare device process ("ready") waits, already started, for the device it is to serve
// (`assign`), so that the hotplug script's wait never includes starting a process. Once it
// serves a device it is a device host (device-host.ts): the starter may assign it more devices
// (isolation), so each message about a device names its backend, and a device's end is a
// message (`ended`, with what its exit status would have been) rather than the process's exit.

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

/** The device a message is about: absent from a process serving one device (`--device`). */
interface About {
  readonly backend?: string;
}

export type FromDevice =
  | { readonly t: 'ready' }
  | ({ readonly t: 'opened' } & OpenedImage & About)
  | ({ readonly t: 'open-failed'; readonly image: string | undefined; readonly message: string } & About)
  /** After a good verdict, the image lock (src/image/lock.ts): taken (or adopted, or deferred
   * for a migration destination), or refused (busy: another host holds it). */
  | ({ readonly t: 'locked'; readonly ok: true } & About)
  | ({ readonly t: 'locked'; readonly ok: false; readonly busy: boolean; readonly message: string } & About)
  /** A hosted device finished: `code` as a process serving it alone would have exited. */
  | { readonly t: 'ended'; readonly backend: string; readonly code: number };

export type ToDevice =
  | { readonly t: 'assign'; readonly backend: string; readonly args: readonly string[]; readonly restarts: number }
  | ({ readonly t: 'verdict'; readonly ok: true } & About)
  | ({ readonly t: 'verdict'; readonly ok: false; readonly message: string } & About)
  /** A hosted device quiesces and ends (what SIGTERM is to a process serving one device). */
  | { readonly t: 'stop'; readonly backend: string }
  /** The host serves no device any more and gets none: it exits. */
  | { readonly t: 'exit' };

const isObj = (m: unknown): m is Record<string, unknown> => typeof m === 'object' && m !== null;
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The backend a message names, if it names one as a string (else none, or invalid). */
function about(m: Record<string, unknown>): About | undefined {
  if (m.backend === undefined) return {};
  return isStr(m.backend) ? { backend: m.backend } : undefined;
}

/** A message from a device process, checked (a device process faces a guest: trust nothing). */
export function parseFromDevice(m: unknown): FromDevice | undefined {
  if (!isObj(m)) return undefined;
  if (m.t === 'ready') return { t: 'ready' };
  if (m.t === 'ended' && isStr(m.backend) && isNum(m.code)) return { t: 'ended', backend: m.backend, code: m.code };
  const a = about(m);
  if (!a) return undefined;
  if (m.t === 'opened' && isNum(m.dev) && isNum(m.ino) && isStr(m.realpath) && isStr(m.image) &&
    typeof m.writable === 'boolean') {
    return {
      t: 'opened', dev: m.dev, ino: m.ino, realpath: m.realpath, image: m.image, writable: m.writable,
      ...(m.incoming === true ? { incoming: true } : {}), ...a,
    };
  }
  if (m.t === 'locked' && m.ok === true) return { t: 'locked', ok: true, ...a };
  if (m.t === 'locked' && m.ok === false && typeof m.busy === 'boolean' && isStr(m.message)) {
    return { t: 'locked', ok: false, busy: m.busy, message: m.message.slice(0, 1000), ...a };
  }
  if (m.t === 'open-failed' && isStr(m.message) && (m.image === undefined || isStr(m.image))) {
    return { t: 'open-failed', image: m.image, message: m.message.slice(0, 1000), ...a };
  }
  return undefined;
}

export function parseToDevice(m: unknown): ToDevice | undefined {
  if (!isObj(m)) return undefined;
  if (m.t === 'assign' && isStr(m.backend) && Array.isArray(m.args) && m.args.every(isStr) && isNum(m.restarts)) {
    return { t: 'assign', backend: m.backend, args: m.args, restarts: m.restarts };
  }
  if (m.t === 'stop' && isStr(m.backend)) return { t: 'stop', backend: m.backend };
  if (m.t === 'exit') return { t: 'exit' };
  const a = about(m);
  if (!a) return undefined;
  if (m.t === 'verdict' && m.ok === true) return { t: 'verdict', ok: true, ...a };
  if (m.t === 'verdict' && m.ok === false && isStr(m.message)) {
    return { t: 'verdict', ok: false, message: m.message, ...a };
  }
  return undefined;
}
