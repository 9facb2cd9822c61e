// Where the XenStore is and how bytes get there: the xenstored unix socket, or the kernel's
// /dev/xen/xenbus (xenstore in a stub domain, or no socket). Path order as libxenstore's
// xs_daemon_socket() and xs_domain_dev(): XENSTORED_PATH, else XENSTORED_RUNDIR/socket, else
// /var/run/xenstored/socket; then the device when the socket does not exist.
import * as fs from 'node:fs';
import * as net from 'node:net';
import { XenStoreError } from '../xenstore';
import { FrameReader, type Frame, encodeFrame } from './wire';

export const DEFAULT_SOCKET = '/var/run/xenstored/socket';
export const XENBUS_DEVICES = ['/dev/xen/xenbus', '/proc/xen/xenbus'] as const;

export interface Endpoint {
  readonly kind: 'socket' | 'device';
  readonly path: string;
}

/** The socket libxenstore would use, from the environment. */
export function socketPath(env: NodeJS.ProcessEnv): string {
  if (env.XENSTORED_PATH) return env.XENSTORED_PATH;
  if (env.XENSTORED_RUNDIR) return `${env.XENSTORED_RUNDIR}/socket`;
  return DEFAULT_SOCKET;
}

/** The socket when it exists (or was named explicitly), else the first xenbus device present. */
export function chooseEndpoint(env: NodeJS.ProcessEnv): Endpoint {
  const sock = socketPath(env);
  if (env.XENSTORED_PATH || fs.existsSync(sock)) return { kind: 'socket', path: sock };
  const dev = XENBUS_DEVICES.find((d) => fs.existsSync(d));
  if (dev) return { kind: 'device', path: dev };
  return { kind: 'socket', path: sock };
}

export interface Transport {
  readonly endpoint: Endpoint;
  send(frame: Frame): void;
  close(): void;
}

export interface TransportEvents {
  onFrame(frame: Frame): void;
  /** The connection ended (err undefined when close() was called). */
  onClose(err: Error | undefined): void;
}

/** A readable message for a connect failure: names the path and what to do. */
export function connectError(ep: Endpoint, err: NodeJS.ErrnoException): XenStoreError {
  const code = err.code ?? 'error';
  const hint = ep.kind === 'socket'
    ? code === 'ENOENT' || code === 'ECONNREFUSED'
      ? 'is xenstored running? start it (systemctl start xenstored), or point XENSTORED_PATH at its socket'
      : code === 'EACCES' ? 'run as root' : 'check xenstored'
    : 'is this a Xen dom0 with xenfs mounted on /proc/xen?';
  return new XenStoreError(code, 'connect', ep.path, hint);
}

export function connectSocket(ep: Endpoint, ev: TransportEvents): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(ep.path);
    const reader = new FrameReader();
    let open = false;
    let closedByUs = false;
    let failure: Error | undefined;
    sock.once('connect', () => {
      open = true;
      sock.setNoDelay?.(true);
      resolve({
        endpoint: ep,
        send: (f) => { sock.write(encodeFrame(f)); },
        close: () => { closedByUs = true; sock.destroy(); },
      });
    });
    sock.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = reader.push(chunk);
      } catch (e) {
        failure = e as Error;
        sock.destroy();
        return;
      }
      for (const f of frames) ev.onFrame(f);
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (!open) reject(connectError(ep, err));
      else failure = err;
    });
    sock.on('close', () => {
      if (open)
        ev.onClose(closedByUs ? undefined : (failure ?? new Error(`xenstored closed the connection (${ep.path})`)));
    });
  });
}

/** /dev/xen/xenbus: whole frames written with write(2) (kept in order by writing synchronously;
 * the kernel buffers them), replies and watch events read as a byte stream. The read loop blocks
 * one libuv pool thread for the life of the connection. Only testable under real Xen. */
export async function connectDevice(ep: Endpoint, ev: TransportEvents): Promise<Transport> {
  let fd: number;
  try {
    fd = fs.openSync(ep.path, fs.constants.O_RDWR);
  } catch (e) {
    throw connectError(ep, e as NodeJS.ErrnoException);
  }
  const reader = new FrameReader();
  let closed = false;
  const buf = Buffer.alloc(65536);
  const finish = (err: Error | undefined): void => {
    if (closed) return;
    closed = true;
    try { fs.closeSync(fd); } catch { /* already gone */ }
    ev.onClose(err);
  };
  const loop = (): void => {
    fs.read(fd, buf, 0, buf.length, null, (err, n) => {
      if (closed) return;
      if (err) return finish(err);
      if (n === 0) return finish(new Error(`${ep.path}: end of file`));
      try {
        for (const f of reader.push(Buffer.from(buf.subarray(0, n)))) ev.onFrame(f);
      } catch (e) {
        return finish(e as Error);
      }
      loop();
    });
  };
  loop();
  return {
    endpoint: ep,
    send: (f) => {
      const data = encodeFrame(f);
      let off = 0;
      while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
    },
    close: () => finish(undefined),
  };
}
