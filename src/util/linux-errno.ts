// Linux errno values libuv has no name for: Node reports them with code "UNKNOWN" (and the
// negative errno), so nothing downstream could tell an expired kAFS key from any other failure.
// Values from include/uapi/asm-generic/errno.h (x86, arm and the other asm-generic users).
// kAFS returns the key ones from its key checks (fs/afs/security.c, net/rxrpc/key.c) and ETIME
// when a file server does not answer (net/rxrpc/input.c, call timeouts).
const NAMES: Readonly<Record<number, string>> = {
  62: 'ETIME',
  // Over quota on AFS and NFS: libuv has no UV_EDQUOT (a FLUSH failed at once instead of
  // being held; test/proofs/faults.test.ts).
  122: 'EDQUOT',
  126: 'ENOKEY',
  127: 'EKEYEXPIRED',
  128: 'EKEYREVOKED',
  129: 'EKEYREJECTED',
};

/**
 * Gives `err` the errno's name as its code when libuv left it unnamed: "UNKNOWN" from
 * lib/internal/errors.js uvException, "Unknown system error -122" from the fs callbacks
 * (uv_err_name in node's C++ UVException), or unset.
 */
export function nameLinuxErrno<E extends NodeJS.ErrnoException | null>(err: E): E {
  if (err && (err.code === undefined || err.code === 'UNKNOWN' || err.code.startsWith('Unknown system error'))
    && typeof err.errno === 'number') {
    const name = NAMES[Math.abs(err.errno)];
    if (name) err.code = name;
  }
  return err;
}

/** The name of a Linux errno libuv has no name for (ENOKEY, EKEYEXPIRED...), if known here. */
export function linuxErrnoName(errno: number): string | undefined {
  return NAMES[Math.abs(errno)];
}
