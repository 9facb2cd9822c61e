// The XenStore client: implements xen/xenstore.ts over the wire protocol (wire.ts) on a socket or
// /dev/xen/xenbus (transport.ts).
//
// - Requests are multiplexed by req_id; replies are matched by req_id, never by order (WATCH and
//   UNWATCH replies synthesised by old kernels carry no req_id: matched by type instead).
// - Watch events are demultiplexed by token; on /dev/xen/xenbus the initial event may arrive
//   before the WATCH reply, so a watch is live in the token table before its request is sent.
// - When xenstored goes away, the client reconnects with backoff, re-registers every watch
//   (which fires its initial event again, so callers re-read their state), and resends the
//   requests that were outside a transaction (every XenStore operation is idempotent). Requests
//   inside a transaction fail with ECONNRESET and transaction() runs the whole function again,
//   as it does on EAGAIN.
import { setTimeout as sleep } from 'node:timers/promises';
import createDebug from 'debug';
import {
  type Permission, type Watch, type WatchHandler, type XenStore, type XenStoreOps,
  TRANSACTION_RETRIES, XenStoreError, isXenStoreError,
} from '../xenstore';
import { type Endpoint, type Transport, chooseEndpoint, connectDevice, connectSocket } from './transport';
import { type Frame, PAYLOAD_MAX, XsType, nulTerminated, splitNul, typeName } from './wire';
import { formatPermissions, parsePermissions } from './permissions';

const debug = createDebug('afsfile:xenstore');

export interface XenStoreClientOptions {
  /** Where to connect; default from XENSTORED_PATH / XENSTORED_RUNDIR / the device. */
  readonly endpoint?: Endpoint;
  readonly env?: NodeJS.ProcessEnv;
  /** Reconnect after xenstored goes away (default true). */
  readonly reconnect?: boolean;
  /** Longest wait between reconnect attempts (default 2000 ms). */
  readonly maxBackoffMs?: number;
  /** Lines an administrator should see (connection lost / restored); default: the debug log. */
  readonly log?: (line: string) => void;
  /** Called after a reconnect, once the watches are registered again. */
  readonly onReconnect?: () => void;
}

interface Request {
  readonly type: number;
  readonly txId: number;
  readonly payload: Buffer;
  readonly op: string;
  readonly path: string;
  readonly resolve: (payload: Buffer) => void;
  readonly reject: (err: Error) => void;
}

interface WatchEntry {
  readonly path: string;
  readonly handler: WatchHandler;
  registered: boolean;
  /** Registered when the connection was lost: reconnectLoop registers it again. */
  rewatch: boolean;
  closed: boolean;
}

/** How long a connect is tried again while xenstored's backlog is full (EAGAIN). */
const CONNECT_RETRY_MS = 10_000;

export async function connectXenStore(opts: XenStoreClientOptions = {}): Promise<XenStoreClient> {
  const c = new XenStoreClient(opts);
  await c.connect();
  return c;
}

export class XenStoreClient implements XenStore {
  readonly endpoint: Endpoint;
  private transport: Transport | undefined;
  private readonly pending = new Map<number, Request>();
  private queue: Request[] = [];
  private readonly watches = new Map<string, WatchEntry>();
  private nextReqId = 1;
  private nextToken = 1;
  private readonly tokenPrefix = `afsfile/${process.pid}/`;
  /** Counts connections; a transaction id is only valid in the generation that made it. */
  private generation = 0;
  private closed = false;
  private reconnecting = false;
  private readonly log: (line: string) => void;

  constructor(private readonly opts: XenStoreClientOptions = {}) {
    this.endpoint = opts.endpoint ?? chooseEndpoint(opts.env ?? process.env);
    this.log = opts.log ?? ((l) => debug(l));
  }

  /** Opens the first connection; rejects with a message naming the path and the fix. */
  async connect(): Promise<void> {
    // A full listen backlog answers a unix-socket connect with EAGAIN: seen against Debian's
    // xenstored when a device host starts its many disks at once (a restarted worker): a
    // moment later there is room.
    const deadline = Date.now() + CONNECT_RETRY_MS;
    for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
      try {
        await this.open();
        return;
      } catch (e) {
        if (!isXenStoreError(e, 'EAGAIN') || Date.now() >= deadline) throw e;
        await sleep(delay * (1 + Math.random()));
      }
    }
  }

  private async open(): Promise<void> {
    const events = { onFrame: (f: Frame) => this.onFrame(f), onClose: (e: Error | undefined) => this.onClose(e) };
    const t =
      this.endpoint.kind === 'socket'
        ? await connectSocket(this.endpoint, events)
        : await connectDevice(this.endpoint, events);
    if (this.closed) {
      t.close();
      return;
    }
    this.transport = t;
    this.generation++;
    debug('connected to %s %s (generation %d)', this.endpoint.kind, this.endpoint.path, this.generation);
  }

  // ---- requests ----

  private request(type: number, payload: Buffer, op: string, path: string, txId = 0): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new XenStoreError('ECONNRESET', op, path, 'the client is closed'));
      if (payload.length > PAYLOAD_MAX) {
        return reject(new XenStoreError('E2BIG', op, path, `request payload is ${payload.length} bytes, XenStore allows ${PAYLOAD_MAX}`));
      }
      const req: Request = { type, txId, payload, op, path, resolve, reject };
      // A watch dies with its connection and is re-registered only while in the table: with
      // no connection there is nothing to unregister (and xenstored may be gone for good).
      if (!this.transport && type === XsType.UNWATCH) return resolve(Buffer.alloc(0));
      if (this.transport) this.sendNow(req);
      else if (txId !== 0)
        reject(new XenStoreError('ECONNRESET', op, path, 'connection to xenstored lost during the transaction'));
      else this.queue.push(req);
    });
  }

  private sendNow(req: Request): void {
    let id = this.nextReqId;
    while (this.pending.has(id) || id === 0) id = (id + 1) >>> 0;
    this.nextReqId = (id + 1) >>> 0;
    this.pending.set(id, req);
    this.transport!.send({ type: req.type, reqId: id, txId: req.txId, payload: req.payload });
  }

  private onFrame(f: Frame): void {
    if (f.type === XsType.WATCH_EVENT) {
      const [path, token] = splitNul(f.payload);
      const w = token === undefined ? undefined : this.watches.get(token);
      if (!w || w.closed || path === undefined) return;
      try {
        w.handler(path);
      } catch (e) {
        this.log(`xenstore: watch handler for ${w.path} threw: ${(e as Error).stack ?? String(e)}`);
      }
      return;
    }
    let id = f.reqId;
    let req = this.pending.get(id);
    if (!req && (f.type === XsType.WATCH || f.type === XsType.UNWATCH)) {
      for (const [k, r] of this.pending) if (r.type === f.type) { id = k; req = r; break; }
    }
    if (!req) {
      debug('reply %s for unknown req_id %d ignored', typeName(f.type), f.reqId);
      return;
    }
    this.pending.delete(id);
    if (f.type === XsType.ERROR) req.reject(new XenStoreError(splitNul(f.payload)[0] ?? 'EIO', req.op, req.path));
    else req.resolve(f.payload);
  }

  private onClose(err: Error | undefined): void {
    this.transport = undefined;
    const inFlight = [...this.pending.values()];
    this.pending.clear();
    if (this.closed || err === undefined || this.opts.reconnect === false) {
      const why = err ? err.message : 'the client is closed';
      for (const r of [...inFlight, ...this.queue]) r.reject(new XenStoreError('ECONNRESET', r.op, r.path, why));
      this.queue = [];
      if (!this.closed && err) this.log(`xenstore: connection to ${this.endpoint.path} lost: ${err.message}`);
      return;
    }
    this.log(`xenstore: connection to ${this.endpoint.path} lost (${err.message}); reconnecting`);
    const resend: Request[] = [];
    for (const r of inFlight) {
      if (r.type === XsType.UNWATCH) r.resolve(Buffer.alloc(0));
      else if (r.txId !== 0)
        r.reject(new XenStoreError('ECONNRESET', r.op, r.path, 'connection to xenstored lost during the transaction'));
      else resend.push(r);
    }
    this.queue = [...resend, ...this.queue];
    // Only watches xenstored had acknowledged are registered again by reconnectLoop; a WATCH
    // still in flight is resent with the other requests (doing both would get EEXIST).
    for (const w of this.watches.values()) {
      w.rewatch = w.registered;
      w.registered = false;
    }
    void this.reconnectLoop();
  }

  private async reconnectLoop(): Promise<void> {
    if (this.reconnecting) return;
    this.reconnecting = true;
    let delay = 10;
    const max = this.opts.maxBackoffMs ?? 2000;
    let attempts = 0;
    while (!this.closed && !this.transport) {
      await sleep(delay);
      if (this.closed) break;
      attempts++;
      try {
        await this.open();
      } catch (e) {
        if (attempts === 1 || attempts % 20 === 0) debug('reconnect attempt %d: %s', attempts, (e as Error).message);
        delay = Math.min(max, delay * 2);
      }
    }
    this.reconnecting = false;
    if (this.closed || !this.transport) return;
    this.log(`xenstore: reconnected to ${this.endpoint.path} after ${attempts} attempt(s)`);
    const queued = this.queue;
    this.queue = [];
    // Watches first, so that no change made by a resent request goes unseen.
    const rewatch = [...this.watches.entries()].filter(([, w]) => !w.closed && w.rewatch).map(([token, w]) =>
      this.request(XsType.WATCH, nulTerminated(w.path, token), 'watch', w.path).then(
        () => { w.registered = true; },
        (e: Error) => {
          if (isXenStoreError(e, 'EEXIST')) w.registered = true;
          else this.log(`xenstore: re-registering the watch on ${w.path} failed: ${e.message}`);
        }));
    for (const r of queued) this.sendNow(r);
    await Promise.all(rewatch);
    this.opts.onReconnect?.();
  }

  // ---- operations ----

  private ops(txId: number, generation: number): XenStoreOps {
    const guard = (op: string, path: string): void => {
      if (txId !== 0 && generation !== this.generation) {
        throw new XenStoreError('ECONNRESET', op, path, 'connection to xenstored lost during the transaction');
      }
      checkPath(op, path);
    };
    const req = async (type: number, op: string, path: string, payload: Buffer): Promise<Buffer> => {
      guard(op, path);
      return this.request(type, payload, op, path, txId);
    };
    const read = async (path: string): Promise<string> =>
      (await req(XsType.READ, 'read', path, nulTerminated(path))).toString('utf8');
    return {
      read,
      tryRead: async (path) => {
        try {
          return await read(path);
        } catch (e) {
          if (isXenStoreError(e, 'ENOENT')) return undefined;
          throw e;
        }
      },
      write: async (path, value) => {
        await req(XsType.WRITE, 'write', path, Buffer.concat([nulTerminated(path), Buffer.from(value, 'utf8')]));
      },
      mkdir: async (path) => { await req(XsType.MKDIR, 'mkdir', path, nulTerminated(path)); },
      directory: async (path) => {
        try {
          return splitNul(await req(XsType.DIRECTORY, 'directory', path, nulTerminated(path)));
        } catch (e) {
          if (!isXenStoreError(e, 'E2BIG')) throw e;
          return this.directoryPart(path, (off) =>
            req(XsType.DIRECTORY_PART, 'directory', path, nulTerminated(path, String(off))),
          );
        }
      },
      rm: async (path) => {
        await req(XsType.RM, 'rm', path, nulTerminated(path));
      },
      getPermissions: async (path) =>
        parsePermissions(splitNul(await req(XsType.GET_PERMS, 'get-perms', path, nulTerminated(path))), path),
      setPermissions: async (path, perms) => {
        await req(XsType.SET_PERMS, 'set-perms', path, nulTerminated(path, ...formatPermissions(perms)));
      },
    };
  }

  /**
   * A children list longer than one payload (DIRECTORY answers E2BIG): DIRECTORY_PART `path|off|`
   * answers `gen|child|...|` from byte `off` of the list, the last part ending in an extra NUL
   * (observed on cxenstored 4.17). A changed generation means the node changed: start again.
   */
  private async directoryPart(path: string, part: (offset: number) => Promise<Buffer>): Promise<string[]> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const chunks: Buffer[] = [];
      let gen: string | undefined;
      let off = 0;
      for (;;) {
        const r = await part(off);
        const nul = r.indexOf(0);
        if (nul < 0) throw new XenStoreError('EIO', 'directory', path, 'DIRECTORY_PART reply without a generation');
        const g = r.subarray(0, nul).toString('latin1');
        if (gen !== undefined && g !== gen) break;
        gen = g;
        const body = r.subarray(nul + 1);
        const last = body.length === 0 || (body.length === 1 && body[0] === 0) ||
          (body.length >= 2 && body[body.length - 1] === 0 && body[body.length - 2] === 0);
        chunks.push(last ? body.subarray(0, Math.max(0, body.length - 1)) : body);
        if (last) return splitNul(Buffer.concat(chunks));
        off += body.length;
      }
    }
    throw new XenStoreError('EAGAIN', 'directory', path, 'the node kept changing while its children were listed');
  }

  private get direct(): XenStoreOps { return this.ops(0, this.generation); }

  read(path: string): Promise<string> { return this.direct.read(path); }
  tryRead(path: string): Promise<string | undefined> { return this.direct.tryRead(path); }
  write(path: string, value: string): Promise<void> { return this.direct.write(path, value); }
  mkdir(path: string): Promise<void> { return this.direct.mkdir(path); }
  directory(path: string): Promise<string[]> { return this.direct.directory(path); }
  rm(path: string): Promise<void> { return this.direct.rm(path); }
  getPermissions(path: string): Promise<Permission[]> { return this.direct.getPermissions(path); }
  setPermissions(path: string, perms: readonly Permission[]): Promise<void> { return this.direct.setPermissions(path, perms); }

  async transaction<T>(fn: (tx: XenStoreOps) => Promise<T>): Promise<T> {
    let lastCode = 'EAGAIN';
    for (let attempt = 0; attempt <= TRANSACTION_RETRIES; attempt++) {
      if (attempt > 2) await sleep(Math.min(attempt, 20) * Math.random());
      const startReply = await this.startTransaction();
      const { id, generation } = startReply;
      let result: T;
      try {
        result = await fn(this.ops(id, generation));
      } catch (e) {
        await this.endTransaction(id, generation, false).catch(() => undefined);
        if (retryable(e)) { lastCode = (e as XenStoreError).code; continue; }
        throw e;
      }
      try {
        await this.endTransaction(id, generation, true);
        return result;
      } catch (e) {
        if (retryable(e)) { lastCode = (e as XenStoreError).code; continue; }
        throw e;
      }
    }
    throw new XenStoreError(lastCode, 'transaction', '', `gave up after ${TRANSACTION_RETRIES} retries`);
  }

  private async startTransaction(): Promise<{ id: number; generation: number }> {
    for (;;) {
      try {
        const reply = await this.request(XsType.TRANSACTION_START, nulTerminated(''), 'transaction-start', '');
        const id = Number(splitNul(reply)[0]);
        if (!Number.isInteger(id) || id <= 0) throw new XenStoreError('EIO', 'transaction-start', '', `bad transaction id ${JSON.stringify(reply.toString())}`);
        // A START resent across a reconnect was answered by the new connection.
        return { id, generation: this.generation };
      } catch (e) {
        if (!isXenStoreError(e, 'ECONNRESET') || this.closed) throw e;
      }
    }
  }

  private async endTransaction(id: number, generation: number, commit: boolean): Promise<void> {
    if (generation !== this.generation) throw new XenStoreError('ECONNRESET', 'transaction-end', '', 'connection to xenstored lost during the transaction');
    await this.request(XsType.TRANSACTION_END, nulTerminated(commit ? 'T' : 'F'), 'transaction-end', '', id);
  }

  async watch(path: string, handler: WatchHandler): Promise<Watch> {
    checkPath('watch', path);
    const token = `${this.tokenPrefix}${this.nextToken++}`;
    const entry: WatchEntry = { path, handler, registered: false, rewatch: false, closed: false };
    // In the table before the request goes out: the initial event may beat the reply.
    this.watches.set(token, entry);
    try {
      await this.request(XsType.WATCH, nulTerminated(path, token), 'watch', path);
      entry.registered = true;
    } catch (e) {
      this.watches.delete(token);
      throw e;
    }
    return {
      close: async () => {
        if (entry.closed) return;
        entry.closed = true;
        this.watches.delete(token);
        if (this.closed) return;
        await this.request(XsType.UNWATCH, nulTerminated(path, token), 'unwatch', path).catch(() => undefined);
      },
    };
  }

  async getDomainPath(domid: number): Promise<string> {
    const reply = await this.request(
      XsType.GET_DOMAIN_PATH,
      nulTerminated(String(domid)),
      'get-domain-path',
      String(domid),
    );
    return splitNul(reply)[0] ?? '';
  }

  /** INTRODUCE (what libxl does when a domain is created): tests use it to make a guest
   * domain known so that RELEASE fires @releaseDomain. */
  async introduceDomain(domid: number, mfn: number, port: number): Promise<void> {
    await this.request(
      XsType.INTRODUCE,
      nulTerminated(String(domid), String(mfn), String(port)),
      'introduce',
      String(domid),
    );
  }

  /** RELEASE (what libxl does when a domain is destroyed): fires @releaseDomain. */
  async releaseDomain(domid: number): Promise<void> {
    await this.request(XsType.RELEASE, nulTerminated(String(domid)), 'release', String(domid));
  }

  get connected(): boolean { return this.transport !== undefined; }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const t = this.transport;
    this.transport = undefined;
    for (const w of this.watches.values()) w.closed = true;
    this.watches.clear();
    const why = 'the client is closed';
    for (const r of [...this.pending.values(), ...this.queue])
      r.reject(new XenStoreError('ECONNRESET', r.op, r.path, why));
    this.pending.clear();
    this.queue = [];
    t?.close();
  }
}

function retryable(e: unknown): boolean {
  return isXenStoreError(e, 'EAGAIN') || isXenStoreError(e, 'ECONNRESET');
}

function checkPath(op: string, path: string): void {
  if (path.length === 0 || path.includes('\0'))
    throw new XenStoreError('EINVAL', op, path, 'empty path or a NUL in it');
}
