// Which file errors are worth holding a request for (DESIGN.md "Durability"): on AFS these
// show up when tokens expire (EACCES; kAFS: EKEYEXPIRED, ENOKEY, EKEYREJECTED, EKEYREVOKED,
// which a renewal and a reopen fix), a file server is down or restarting (ETIMEDOUT, EAGAIN,
// EBUSY, ENOTCONN; kAFS: EDESTADDRREQ when no server of the volume answers, ETIME when a call
// times out, ECONNREFUSED from a stopped file server's port (fsync, Linux 6.12 in the Xen AFS
// restart case), EHOSTUNREACH/ENETUNREACH/ECONNRESET for the network between), or a volume is
// full or over quota until an administrator acts (ENOSPC, EDQUOT; kAFS reports VOVERQUOTA at
// fsync as EDESTADDRREQ). The request is retried until hold-timeout; only then does the guest
// see BLKIF_RSP_ERROR.
//
// EIO is transient for pread/pwrite (they are idempotent, and AFS reports a lost server
// connection as EIO) but NOT for fsync: after a failed fsync a local file system may already
// have dropped the dirty pages and marked them clean, so a retried fsync can report success
// for data that is gone. The guest must see that error.
const ALWAYS = new Set([
  'EACCES', 'EKEYEXPIRED', 'ENOKEY', 'EKEYREJECTED', 'EKEYREVOKED', 'EDESTADDRREQ', 'ETIME', 'ETIMEDOUT', 'EAGAIN',
  'EWOULDBLOCK', 'EINTR', 'EBUSY', 'ENOTCONN', 'ENOSPC', 'EDQUOT', 'ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH',
  'ENETUNREACH',
]);

export function isTransient(code: string | undefined, op: 'read' | 'write' | 'fsync' | 'discard'): boolean {
  if (code === undefined) return false;
  if (ALWAYS.has(code)) return true;
  return code === 'EIO' && (op === 'read' || op === 'write');
}
