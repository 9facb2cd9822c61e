// An in-memory XenStore that behaves like cxenstored, for the demo and in-process tests
// (DESIGN.md "Platform": the worker itself always talks to the real xenstored).
//
//   const store = new SimStore();
//   const dom0 = store.connect(0);      // an XenStore for the toolstack / backend
//   const guest = store.connect(5);     // an XenStore as domain 5 sees it
//
// Semantics (xen.git docs/misc/xenstore.txt, tools/xenstored): absolute paths (relative ones resolve against /local/domain/<domid>,
// as for a domain connection); WRITE creates parents; READ returns exactly what was written;
// RM is recursive and fails ENOENT only when the parent is missing too; permissions are
// enforced per connection (dom0 may do anything); a watch fires once at registration with the
// watched path, then for the path or any descendant, always asynchronously (never inside the
// call that caused it); transactions work on a snapshot and a commit that conflicts with a
// change made since (to any node the transaction read or wrote) fails EAGAIN and is retried by
// transaction(); @introduceDomain and @releaseDomain fire from introduceDomain()/releaseDomain().
import createDebug from 'debug';
import {
  type Permission,
  TRANSACTION_RETRIES,
  type Watch,
  type WatchHandler,
  type XenStore,
  XenStoreError,
  type XenStoreOps,
} from '../xen/xenstore';
import { Tree, TreeError, access, canRead, components } from './xenstore-tree';

const log = createDebug('afsfile:sim:xenstore');

interface WatchEntry {
  readonly conn: SimXenStoreConnection;
  /** Absolute path (or @special) the watch covers. */
  readonly path: string;
  /** What the caller passed: event paths are reported relative when this was relative. */
  readonly given: string;
  readonly handler: WatchHandler;
  closed: boolean;
}

type LoggedOp =
  | { op: 'write'; path: string; value: string }
  | { op: 'mkdir'; path: string }
  | { op: 'rm'; path: string }
  | { op: 'setperms'; path: string; perms: Permission[] };

export class SimStore {
  readonly tree = new Tree();
  private readonly watches: WatchEntry[] = [];
  private readonly connections = new Set<SimXenStoreConnection>();
  /** Counts commits that failed EAGAIN (tests assert on it). */
  conflicts = 0;

  /** An XenStore as domain `domid` sees it. */
  connect(domid: number): SimXenStoreConnection {
    const c = new SimXenStoreConnection(this, domid);
    this.connections.add(c);
    return c;
  }

  /** Makes /local/domain/<domid> (owned by the domain, as xl does) and fires @introduceDomain. */
  introduceDomain(domid: number): void {
    const path = `/local/domain/${domid}`;
    const changed = this.tree.write(path, '', 0, true);
    this.tree.setPerms(path, [{ domid, access: 'n' }], 0);
    this.fire([...changed, path], 0, false);
    this.fireSpecial('@introduceDomain');
  }

  /** Fires @releaseDomain, as when a domain dies; the toolstack cleans up the paths. */
  releaseDomain(_domid: number): void {
    this.fireSpecial('@releaseDomain');
  }

  /** @internal */
  addWatch(w: WatchEntry): void {
    this.watches.push(w);
  }
  /** @internal */
  removeWatch(w: WatchEntry): void {
    w.closed = true;
    const i = this.watches.indexOf(w);
    if (i >= 0) this.watches.splice(i, 1);
  }
  /** @internal */
  dropConnection(c: SimXenStoreConnection): void {
    this.connections.delete(c);
    for (const w of [...this.watches]) if (w.conn === c) this.removeWatch(w);
  }

  /**
   * Queues events for every watch covering a changed path. A removal (`changed`: the removed
   * nodes, each removed node followed by the ones below it) fires, as cxenstored's rm does
   * (xenstored_core.c delnode_sub, fire_watches with exact=true, then exact=false for the top):
   * the watches on or above the removed node, and the watches set exactly on a node below it
   * that existed. A watch on a path that never existed below it gets NO event.
   */
  fire(changed: readonly string[], _actor: number, removal: boolean): void {
    const all = removal ? new Set(changed) : undefined;
    for (const p of changed) {
      const top = all === undefined || !hasAncestorIn(p, all);
      for (const w of this.watches) {
        if (w.path.startsWith('@')) continue;
        const hit = top ? p === w.path || p.startsWith(w.path === '/' ? '/' : `${w.path}/`) : p === w.path;
        if (!hit || !this.maySee(w.conn.domid, p)) continue;
        w.conn.queueEvent(w, p);
      }
    }
  }

  private fireSpecial(name: string): void {
    for (const w of this.watches) if (w.path === name) w.conn.queueEvent(w, name);
  }

  /** cxenstored sends a guest events only for nodes it can read (for a removed node: its nearest ancestor). */
  private maySee(domid: number, path: string): boolean {
    if (domid === 0) return true;
    let p = path;
    for (;;) {
      const n = this.tree.lookup(p);
      if (n) return canRead(access(n.perms, domid));
      if (p === '/') return false;
      p = p.slice(0, p.lastIndexOf('/')) || '/';
    }
  }
}

function hasAncestorIn(path: string, set: ReadonlySet<string>): boolean {
  for (let p = path.slice(0, path.lastIndexOf('/')); p.length > 0; p = p.slice(0, p.lastIndexOf('/')))
    if (set.has(p)) return true;
  return false;
}

function toStoreError(err: unknown, op: string, path: string): unknown {
  if (err instanceof TreeError) return new XenStoreError(err.code, op, path, err.message);
  return err;
}

/** The operations on one tree as one domain, recording what they touch (for transactions). */
class TreeOps implements XenStoreOps {
  /** Generation of each node touched, as it was in the snapshot (undefined = absent). */
  readonly accessed = new Map<string, number | undefined>();
  readonly log: LoggedOp[] = [];

  constructor(
    private readonly tree: () => Tree,
    private readonly resolve: (path: string) => string,
    private readonly domid: number,
    /** Called after a direct (non-transactional) change: fires watches. */
    private readonly changed: ((paths: string[], removal: boolean) => void) | undefined,
    private readonly alive: () => void,
  ) {}

  private touch(path: string): void {
    const parent = path === '/' ? '/' : path.slice(0, path.lastIndexOf('/')) || '/';
    for (const p of [path, parent]) if (!this.accessed.has(p)) this.accessed.set(p, this.tree().lookup(p)?.gen);
  }

  private run<T>(op: string, path: string, fn: (abs: string) => T): Promise<T> {
    try {
      this.alive();
      const abs = this.resolve(path);
      components(abs);
      this.touch(abs);
      return Promise.resolve(fn(abs));
    } catch (err) {
      return Promise.reject(toStoreError(err, op, path));
    }
  }

  read(path: string): Promise<string> {
    return this.run('read', path, (p) => this.tree().readable(p, this.domid).value);
  }
  async tryRead(path: string): Promise<string | undefined> {
    try {
      return await this.read(path);
    } catch (err) {
      if (err instanceof XenStoreError && err.code === 'ENOENT') return undefined;
      throw err;
    }
  }
  write(path: string, value: string): Promise<void> {
    return this.run('write', path, (p) => {
      const changed = this.tree().write(p, value, this.domid);
      this.log.push({ op: 'write', path: p, value });
      this.changed?.(changed, false);
    });
  }
  mkdir(path: string): Promise<void> {
    return this.run('mkdir', path, (p) => {
      const changed = this.tree().write(p, '', this.domid, true);
      this.log.push({ op: 'mkdir', path: p });
      this.changed?.(changed, false);
    });
  }
  directory(path: string): Promise<string[]> {
    return this.run('directory', path, (p) => [...this.tree().readable(p, this.domid).children.keys()]);
  }
  rm(path: string): Promise<void> {
    return this.run('rm', path, (p) => {
      const changed = this.tree().rm(p, this.domid);
      this.log.push({ op: 'rm', path: p });
      this.changed?.(changed, true);
    });
  }
  getPermissions(path: string): Promise<Permission[]> {
    return this.run('getPermissions', path, (p) => this.tree().readable(p, this.domid).perms.map((x) => ({ ...x })));
  }
  setPermissions(path: string, perms: readonly Permission[]): Promise<void> {
    return this.run('setPermissions', path, (p) => {
      const changed = this.tree().setPerms(p, perms, this.domid);
      this.log.push({ op: 'setperms', path: p, perms: perms.map((x) => ({ ...x })) });
      this.changed?.(changed, false);
    });
  }
}

/** A transaction opened by begin(): ops on a private snapshot, then commit() or abort(). */
export class SimTransaction {
  private done = false;
  constructor(private readonly store: SimStore, private readonly domid: number, readonly ops: TreeOps) {}

  /** Applies the changes, or rejects EAGAIN when a node it touched changed since it began. */
  commit(): Promise<void> {
    if (this.done) return Promise.reject(new XenStoreError('EINVAL', 'transaction_end', '', 'already ended'));
    this.done = true;
    const live = this.store.tree;
    for (const [path, gen] of this.ops.accessed) {
      if (live.lookup(path)?.gen !== gen) {
        this.store.conflicts++;
        log('transaction conflict on %s', path);
        return Promise.reject(new XenStoreError('EAGAIN', 'transaction_end', path, 'conflicting change'));
      }
    }
    // Nothing it touched changed, so replaying its log on the live tree cannot fail.
    const changed: string[] = [];
    const removed: string[] = [];
    for (const e of this.ops.log) {
      switch (e.op) {
        case 'write': changed.push(...live.write(e.path, e.value, this.domid)); break;
        case 'mkdir': changed.push(...live.write(e.path, '', this.domid, true)); break;
        case 'rm': removed.push(...live.rm(e.path, this.domid)); break;
        case 'setperms': changed.push(...live.setPerms(e.path, e.perms, this.domid)); break;
      }
    }
    this.store.fire(changed, this.domid, false);
    this.store.fire(removed, this.domid, true);
    return Promise.resolve();
  }

  abort(): void {
    this.done = true;
  }
}

export class SimXenStoreConnection implements XenStore {
  private closed = false;
  private readonly queue: Array<{ w: WatchEntry; path: string }> = [];
  private draining = false;
  private readonly direct: TreeOps;

  constructor(private readonly store: SimStore, readonly domid: number) {
    this.direct = this.makeOps(store.tree, (paths, removal) => store.fire(paths, domid, removal));
  }

  private makeOps(tree: Tree, changed: ((paths: string[], removal: boolean) => void) | undefined): TreeOps {
    return new TreeOps(() => tree, (p) => this.resolve(p), this.domid, changed, () => this.checkOpen());
  }

  private checkOpen(): void {
    if (this.closed) throw new XenStoreError('ECONNRESET', 'request', '', 'connection closed');
  }

  /** Relative paths resolve against the domain's home, as for a domain connection. */
  private resolve(path: string): string {
    if (path.startsWith('/')) return path;
    return `/local/domain/${this.domid}/${path}`;
  }

  read(path: string): Promise<string> { return this.direct.read(path); }
  tryRead(path: string): Promise<string | undefined> { return this.direct.tryRead(path); }
  write(path: string, value: string): Promise<void> { return this.direct.write(path, value); }
  mkdir(path: string): Promise<void> { return this.direct.mkdir(path); }
  directory(path: string): Promise<string[]> { return this.direct.directory(path); }
  rm(path: string): Promise<void> { return this.direct.rm(path); }
  getPermissions(path: string): Promise<Permission[]> { return this.direct.getPermissions(path); }
  setPermissions(path: string, perms: readonly Permission[]): Promise<void> { return this.direct.setPermissions(path, perms); }

  /** Starts a raw transaction (tests use it to provoke EAGAIN deterministically). */
  begin(): SimTransaction {
    this.checkOpen();
    const snapshot = this.store.tree.clone();
    return new SimTransaction(this.store, this.domid, this.makeOps(snapshot, undefined));
  }

  async transaction<T>(fn: (tx: XenStoreOps) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const tx = this.begin();
      let result: T;
      try {
        result = await fn(tx.ops);
      } catch (err) {
        tx.abort();
        throw err;
      }
      try {
        await tx.commit();
        return result;
      } catch (err) {
        if (!(err instanceof XenStoreError && err.code === 'EAGAIN') || attempt >= TRANSACTION_RETRIES) throw err;
      }
    }
  }

  watch(path: string, handler: WatchHandler): Promise<Watch> {
    try {
      this.checkOpen();
      const abs = path.startsWith('@') ? path : this.resolve(path);
      if (!abs.startsWith('@')) components(abs);
      const entry: WatchEntry = { conn: this, path: abs, given: path, handler, closed: false };
      this.store.addWatch(entry);
      // cxenstored acks the WATCH, then sends the initial event with the watched path.
      this.queueEvent(entry, abs);
      return Promise.resolve({
        close: () => {
          this.store.removeWatch(entry);
          return Promise.resolve();
        },
      });
    } catch (err) {
      return Promise.reject(toStoreError(err, 'watch', path));
    }
  }

  /** @internal Events are delivered from the event loop, in order, never inside the causing call. */
  queueEvent(w: WatchEntry, absPath: string): void {
    if (this.closed) return;
    const home = `/local/domain/${this.domid}/`;
    const path =
      !w.given.startsWith('/') && !w.given.startsWith('@') && absPath.startsWith(home)
        ? absPath.slice(home.length)
        : absPath;
    this.queue.push({ w, path });
    if (!this.draining) {
      this.draining = true;
      setImmediate(() => this.drain());
    }
  }

  private drain(): void {
    this.draining = false;
    const batch = this.queue.splice(0);
    for (const { w, path } of batch) {
      if (w.closed || this.closed) continue;
      try {
        w.handler(path);
      } catch (err) {
        log('watch handler for %s threw: %O', w.path, err);
      }
    }
  }

  getDomainPath(domid: number): Promise<string> {
    return Promise.resolve(`/local/domain/${domid}`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.store.dropConnection(this);
  }
}
