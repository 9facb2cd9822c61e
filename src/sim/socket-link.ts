// A backend process's link to a simulated guest in another process: the guest's memory file
// mapped here, event channels over the guest's unix socket (sim/wire.ts).
import * as net from 'node:net';
import createDebug from 'debug';
import { GuestMemoryView } from './guest-memory';
import type { GuestLink } from './guest';
import { FrameReader, Msg, frame, memoryPath, socketPath } from './wire';

const log = createDebug('afsfile:sim:link');

export async function connectGuest(dir: string, domid: number, backendDomid: number): Promise<GuestLink> {
  const sockFile = socketPath(dir, domid);
  const sock = net.createConnection(sockFile);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', (err) => reject(Object.assign(new Error(`simulated guest ${domid}: cannot connect to ${sockFile} (is the guest running, and ${'AFSFILE_SIM_DIR'} right?): ${err.message}`), { code: (err as NodeJS.ErrnoException).code })));
  });
  let memory: GuestMemoryView;
  try {
    memory = GuestMemoryView.open(memoryPath(dir, domid));
  } catch (err) {
    sock.destroy();
    throw err;
  }
  let handler: ((port: number) => void) | undefined;
  let closed = false;
  let nextReq = 1;
  const pending = new Map<number, { resolve: () => void; reject: (e: Error) => void; port: number }>();
  let hello!: () => void;
  const helloDone = new Promise<void>((r) => (hello = r));
  const reader = new FrameReader((type, a, b) => {
    switch (type) {
      case Msg.HELLO_ACK:
        if (a !== domid) log('guest at %s says it is domain %d, expected %d', sockFile, a, domid);
        hello();
        break;
      case Msg.BIND_OK:
      case Msg.BIND_ERR: {
        const p = pending.get(a);
        pending.delete(a);
        if (type === Msg.BIND_OK) p?.resolve();
        else
          p?.reject(
            Object.assign(new Error(`guest ${domid} port ${p?.port} is not unbound for domain ${backendDomid}`), {
              code: 'EINVAL',
            }),
          );
        break;
      }
      case Msg.NOTIFY:
        handler?.(b);
        break;
      default:
        log('unknown frame %d from guest %d', type, domid);
    }
  });
  const fail = () => {
    closed = true;
    for (const p of pending.values())
      p.reject(Object.assign(new Error(`simulated guest ${domid} went away`), { code: 'ECONNRESET' }));
    pending.clear();
    memory.close();
  };
  sock.on('data', (d: Buffer) => reader.push(d));
  sock.on('close', fail);
  sock.on('error', () => undefined);
  sock.write(frame(Msg.HELLO, backendDomid));
  await helloDone;
  return {
    domid,
    memory,
    bind: (port) =>
      new Promise<void>((resolve, reject) => {
        if (closed)
          return reject(Object.assign(new Error(`simulated guest ${domid} went away`), { code: 'ECONNRESET' }));
        const id = nextReq++;
        pending.set(id, { resolve, reject, port });
        sock.write(frame(Msg.BIND, id, port));
      }),
    unbind: (port) => void (!closed && sock.write(frame(Msg.UNBIND, 0, port))),
    notify: (port) => void (!closed && sock.write(frame(Msg.NOTIFY, 0, port))),
    unmask: (port) => void (!closed && sock.write(frame(Msg.UNMASK, 0, port))),
    onNotify: (h) => (handler = h),
    get closed() {
      return closed;
    },
    close: () => {
      if (!closed) sock.end();
      closed = true;
    },
  };
}
