// Errors of the Linux platform: every failed call names the operation and carries `code` =
// errno name (ENOENT, ENOTTY, ...), so callers and logs can tell them apart.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { errnoName } from '../../native/addon';
import { EVTCHN_DEVICE, GNTDEV_DEVICE } from './uapi';

export interface XenDeviceError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

function errnoOf(err: unknown): number | undefined {
  const e = err as { errno?: unknown; code?: unknown };
  if (typeof e?.errno === 'number') return Math.abs(e.errno);
  if (typeof e?.code === 'string') {
    const n = (os.constants.errno as Record<string, number>)[e.code];
    if (typeof n === 'number') return n;
  }
  return undefined;
}

/** Wraps a native or fs error: "<operation>: <reason> (<CODE>)". Non-errno errors pass through. */
export function xenError(operation: string, err: unknown, hint?: string): Error {
  const errno = errnoOf(err);
  if (errno === undefined) return err instanceof Error ? err : new Error(`${operation}: ${String(err)}`);
  const code = errnoName(errno);
  const reason = (err as Error).message?.replace(/^[^:]*: /, '').replace(/, [a-z]+ '.*'$/, '') || code;
  const e = new Error(`${operation}: ${reason} (${code})${hint ? `; ${hint}` : ''}`) as XenDeviceError;
  e.code = code;
  e.errno = errno;
  e.syscall = operation;
  return e;
}

export const MISSING_DEVICE_HINT =
  'load xen-evtchn and xen-gntdev (modprobe xen-evtchn xen-gntdev) or run in a Xen dom0; use --platform sim for the simulator';

/** The message for a device that cannot be opened, by errno name. */
function openHint(path: string, code: string): string {
  switch (code) {
    case 'ENOENT':
      return `${path} missing: ${MISSING_DEVICE_HINT}`;
    case 'EACCES':
    case 'EPERM':
      return `${path}: permission denied: run afsfile as root`;
    case 'ENODEV':
    case 'ENXIO':
      return `${path}: no Xen behind the device (not running as a Xen domain?); use --platform sim for the simulator`;
    default:
      return `${path}: cannot open`;
  }
}

/** Opens a Xen device read-write (Node adds O_CLOEXEC); a failure says what to do. */
export function openDevice(path: string, extraFlags = 0): number {
  try {
    return fs.openSync(path, fs.constants.O_RDWR | extraFlags);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    const e = xenError(`open ${path}`, err);
    e.message = `${openHint(path, code)} (${code})`;
    throw e;
  }
}

/**
 * Why the Linux platform cannot run here, or undefined when both devices are present and
 * accessible. For `afsfile check` and the worker's `--platform auto`; opens nothing.
 */
export function linuxPlatformProblem(paths: { evtchn?: string; gntdev?: string } = {}): string | undefined {
  for (const path of [paths.evtchn ?? EVTCHN_DEVICE, paths.gntdev ?? GNTDEV_DEVICE]) {
    let st: fs.Stats;
    try {
      st = fs.statSync(path);
    } catch (err) {
      return openHint(path, (err as NodeJS.ErrnoException).code ?? 'EIO');
    }
    if (!st.isCharacterDevice()) return `${path} is not a character device: ${MISSING_DEVICE_HINT}`;
    try {
      fs.accessSync(path, fs.constants.R_OK | fs.constants.W_OK);
    } catch (err) {
      return openHint(path, (err as NodeJS.ErrnoException).code ?? 'EACCES');
    }
  }
  return undefined;
}
