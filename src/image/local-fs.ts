// What file system an open file lives on (statfs f_type, read once per open image): whether it
// is local (a buffered write is a copy into the page cache that the event loop's thread may do
// itself, see Image.write) and whether it is AFS (reopen after new tokens, see Image.reopen).
// Network and user-space file systems (kAFS, OpenAFS, NFS, FUSE) are never "local": a write
// there can wait for a server, which must not stall the device's event loop.
import * as fs from 'node:fs';

/** statfs f_type values, Linux include/uapi/linux/magic.h. */
const LOCAL_MAGIC: ReadonlySet<number> = new Set([
  0xef53, // EXT2/3/4_SUPER_MAGIC
  0x58465342, // XFS_SUPER_MAGIC
  0x9123683e, // BTRFS_SUPER_MAGIC
  0x01021994, // TMPFS_MAGIC
]);

/** kAFS (AFS_FS_MAGIC) and the OpenAFS client (AFS_SUPER_MAGIC). */
const AFS_MAGIC: ReadonlySet<number> = new Set([0x6b414653, 0x5346414f]);

export interface FsKind {
  /** statfs f_type; 0 when unknown. */
  readonly magic: number;
  readonly local: boolean;
  readonly afs: boolean;
}

/** The file system of an open file; unknown (neither local nor AFS) when statfs fails.
 * `known`: its statfs f_type, asked already where the file was opened. */
export function fsKind(fd: number, known?: number): FsKind {
  let magic = known ?? 0;
  if (known !== undefined) return { magic, local: LOCAL_MAGIC.has(magic), afs: AFS_MAGIC.has(magic) };
  try {
    // Through the fd's magic link: the file that is open, whatever its name is now; statfs
    // follows the link without opening it (no permission needed).
    magic = Number(fs.statfsSync(`/proc/self/fd/${fd}`).type);
  } catch {
    magic = 0;
  }
  return { magic, local: LOCAL_MAGIC.has(magic), afs: AFS_MAGIC.has(magic) };
}
