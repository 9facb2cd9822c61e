// Whether an open file lives on a local block or memory file system, where a buffered write is
// a copy into the page cache that the event loop's thread may do itself (Image, AFSFILE_IO).
// Network and user-space file systems (kAFS, OpenAFS, NFS, FUSE) are never "local": a write
// there can wait for a server, which must not stall the device's event loop.
import * as fs from 'node:fs';

/** statfs f_type values, Linux include/uapi/linux/magic.h. */
const LOCAL_MAGIC = new Set([
  0xef53, // EXT2/3/4_SUPER_MAGIC
  0x58465342, // XFS_SUPER_MAGIC
  0x9123683e, // BTRFS_SUPER_MAGIC
  0x01021994, // TMPFS_MAGIC
]);

export function onLocalFs(fd: number): boolean {
  try {
    // Through the fd's magic link: the file that is open, whatever its name is now.
    return LOCAL_MAGIC.has(Number(fs.statfsSync(`/proc/self/fd/${fd}`).type));
  } catch {
    return false;
  }
}
