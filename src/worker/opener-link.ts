// The IPC messages between the supervisor and an identity's opener (DESIGN "Identities and
// openers"). The opener runs in the identity's PAG: it renews that identity's tickets and
// tokens and starts that identity's device processes, passing their messages both ways; the
// supervisor keeps XenStore and the exclusivity table.
import type { FromDevice, ToDevice } from './device-link';
import { parseFromDevice, parseToDevice } from './device-link';
import { type RetuneMessage, parseRetune, retuneMessage } from './device-retune';

/** The identity's renewal settings (renew's keys, with the identity's keytab, principal, cells). */
export interface OpenerConfig {
  readonly label: string;
  readonly keytab: string;
  readonly principal: string | undefined;
  readonly cells: readonly string[];
  readonly lifetimeS: number;
  readonly marginS: number;
  readonly retryCapS: number;
  readonly aklog: string;
  readonly afsClient: string;
}

export type ToOpener =
  | { readonly t: 'config'; readonly config: OpenerConfig }
  | { readonly t: 'start'; readonly backend: string; readonly args: readonly string[]; readonly restarts: number;
    /** The device host group (spawner.ts); none: a process of its own. */
    readonly group?: string }
  | { readonly t: 'to-device'; readonly backend: string; readonly m: ToDevice | RetuneMessage }
  | { readonly t: 'kill'; readonly backend: string; readonly signal: 'SIGTERM' | 'SIGKILL' };

export type FromOpener =
  | { readonly t: 'started'; readonly backend: string; readonly pid: number | undefined }
  | { readonly t: 'from-device'; readonly backend: string; readonly m: FromDevice }
  | { readonly t: 'exit'; readonly backend: string; readonly code: number | null; readonly signal: string | null;
    /** The process served other devices too (spawner.ts DeviceEvents). */
    readonly shared?: boolean };

const isObj = (m: unknown): m is Record<string, unknown> => typeof m === 'object' && m !== null;
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function parseConfig(c: unknown): OpenerConfig | undefined {
  if (!isObj(c)) return undefined;
  const { label, keytab, principal, cells, lifetimeS, marginS, retryCapS, aklog, afsClient } = c;
  if (!isStr(label) || !isStr(keytab) || !(principal === undefined || isStr(principal))) return undefined;
  if (!Array.isArray(cells) || !cells.every(isStr) || !isStr(aklog) || !isStr(afsClient)) return undefined;
  if (!isNum(lifetimeS) || !isNum(marginS) || !isNum(retryCapS)) return undefined;
  return { label, keytab, principal, cells, lifetimeS, marginS, retryCapS, aklog, afsClient };
}

export function parseToOpener(m: unknown): ToOpener | undefined {
  if (!isObj(m) || !isStr(m.t)) return undefined;
  if (m.t === 'config') {
    const config = parseConfig(m.config);
    return config ? { t: 'config', config } : undefined;
  }
  if (!isStr(m.backend)) return undefined;
  if (m.t === 'start' && Array.isArray(m.args) && m.args.every(isStr) && isNum(m.restarts) &&
    (m.group === undefined || isStr(m.group))) {
    const group = isStr(m.group) ? { group: m.group } : {};
    return { t: 'start', backend: m.backend, args: m.args, restarts: m.restarts, ...group };
  }
  if (m.t === 'to-device') {
    const retune = parseRetune(m.m);
    if (retune) return { t: 'to-device', backend: m.backend, m: retuneMessage(retune) };
    const d = parseToDevice(m.m);
    return d ? { t: 'to-device', backend: m.backend, m: d } : undefined;
  }
  if (m.t === 'kill' && (m.signal === 'SIGTERM' || m.signal === 'SIGKILL')) {
    return { t: 'kill', backend: m.backend, signal: m.signal };
  }
  return undefined;
}

export function parseFromOpener(m: unknown): FromOpener | undefined {
  if (!isObj(m) || !isStr(m.t) || !isStr(m.backend)) return undefined;
  if (m.t === 'started' && (m.pid === undefined || isNum(m.pid))) {
    return { t: 'started', backend: m.backend, pid: m.pid };
  }
  if (m.t === 'from-device') {
    const d = parseFromDevice(m.m);
    return d ? { t: 'from-device', backend: m.backend, m: d } : undefined;
  }
  if (m.t === 'exit' && (m.code === null || isNum(m.code)) && (m.signal === null || isStr(m.signal))) {
    const shared = m.shared === true ? { shared: true } : {};
    return { t: 'exit', backend: m.backend, code: m.code, signal: m.signal, ...shared };
  }
  return undefined;
}
