// The XenStore interface every layer above `xen` uses. Implemented by the wire client
// (xen/xenstore-client: xenstored socket or /dev/xen/xenbus) and, for the demo and in-process
// unit tests, by the in-memory store in sim/ (which behaves like cxenstored).
//
// Semantics follow xen.git docs/misc/xenstore.txt and tools/xenstored: values are strings
// with no trailing NUL; WRITE
// creates missing parents; RM is recursive; a watch fires once at registration with the watched
// path and then for changes to the path or any descendant; errors carry the errno name.

/** Access rights of one domain on a node: read, write, both, none. */
export type Access = 'r' | 'w' | 'b' | 'n';

/** The first entry is the owner and the default for domains not listed. */
export interface Permission {
  readonly domid: number;
  readonly access: Access;
}

/** Operations that work both directly and inside a transaction. */
export interface XenStoreOps {
  /** The value; rejects with XenStoreError code ENOENT when the node is missing. */
  read(path: string): Promise<string>;
  /** The value, or undefined when the node is missing. */
  tryRead(path: string): Promise<string | undefined>;
  write(path: string, value: string): Promise<void>;
  mkdir(path: string): Promise<void>;
  /** Child names (not paths); rejects ENOENT when the node is missing. */
  directory(path: string): Promise<string[]>;
  /** Recursive; removing a missing node whose parent exists is not an error. */
  rm(path: string): Promise<void>;
  getPermissions(path: string): Promise<Permission[]>;
  setPermissions(path: string, perms: readonly Permission[]): Promise<void>;
}

export interface Watch {
  /** Unregisters; no event is delivered after the promise resolves. */
  close(): Promise<void>;
}

/** Called with the path that changed (the watched path itself for the initial event). */
export type WatchHandler = (path: string) => void;

export interface XenStore extends XenStoreOps {
  /**
   * Runs fn in a transaction and commits. When the commit fails with EAGAIN (a conflicting
   * change), fn runs again in a fresh transaction, up to a bound. fn must not have side effects
   * outside the store that cannot be repeated.
   */
  transaction<T>(fn: (tx: XenStoreOps) => Promise<T>): Promise<T>;
  /** Registers a watch on path (or a special path such as @releaseDomain). */
  watch(path: string, handler: WatchHandler): Promise<Watch>;
  /** /local/domain/<domid> as the store reports it. */
  getDomainPath(domid: number): Promise<string>;
  /** Closes the connection; outstanding requests reject with ECONNRESET. */
  close(): void;
}

/** A failure reported by xenstored (code = errno name, e.g. ENOENT, EACCES, EAGAIN) or by the
 * connection (ECONNRESET, ETIMEDOUT). */
export class XenStoreError extends Error {
  constructor(readonly code: string, readonly op: string, readonly path: string, detail?: string) {
    super(`xenstore ${op} ${path}: ${code}${detail ? ` (${detail})` : ''}`);
    this.name = 'XenStoreError';
  }
}

export function isXenStoreError(err: unknown, code?: string): err is XenStoreError {
  return err instanceof XenStoreError && (code === undefined || err.code === code);
}

/** Transactions retry on EAGAIN at most this many times before giving up. */
export const TRANSACTION_RETRIES = 100;
