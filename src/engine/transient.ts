// Which file errors are worth holding a request for (DESIGN.md "Durability"): on AFS these
// show up when tokens expire (EACCES, EKEYEXPIRED), a file server is down or restarting
// (ETIMEDOUT, EAGAIN, EBUSY, ENOTCONN), or a volume is full or over quota until an
// administrator acts (ENOSPC, EDQUOT). The request is retried until hold-timeout; only then
// does the guest see BLKIF_RSP_ERROR.
//
// EIO is transient for pread/pwrite (they are idempotent, and AFS reports a lost server
// connection as EIO) but NOT for fsync: after a failed fsync a local file system may already
// have dropped the dirty pages and marked them clean, so a retried fsync can report success
// for data that is gone. The guest must see that error.
const ALWAYS = new Set(['EACCES', 'EKEYEXPIRED', 'ETIMEDOUT', 'EAGAIN', 'EWOULDBLOCK', 'EINTR', 'EBUSY', 'ENOTCONN', 'ENOSPC', 'EDQUOT']);

export function isTransient(code: string | undefined, op: 'read' | 'write' | 'fsync' | 'discard'): boolean {
  if (code === undefined) return false;
  if (ALWAYS.has(code)) return true;
  return code === 'EIO' && (op === 'read' || op === 'write');
}
