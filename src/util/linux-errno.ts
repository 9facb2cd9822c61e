// Linux errno values libuv has no name for: Node reports them with code "UNKNOWN" (and the
// negative errno), so nothing downstream could tell an expired kAFS key from any other failure.
// Values from include/uapi/asm-generic/errno.h (x86, arm and the other asm-generic users).
// kAFS returns the key ones from its key checks (fs/afs/security.c, net/rxrpc/key.c) and ETIME
// when a file server does not answer (net/rxrpc/input.c, call timeouts).
const NAMES: Readonly<Record<number, string>> = {
  62: 'ETIME',
  126: 'ENOKEY',
  127: 'EKEYEXPIRED',
  128: 'EKEYREVOKED',
  129: 'EKEYREJECTED',
};

/** Gives `err` the errno's name as its code when libuv left it "UNKNOWN" (or unset). */
export function nameLinuxErrno<E extends NodeJS.ErrnoException | null>(err: E): E {
  if (err && (err.code === undefined || err.code === 'UNKNOWN') && typeof err.errno === 'number') {
    const name = NAMES[Math.abs(err.errno)];
    if (name) err.code = name;
  }
  return err;
}
