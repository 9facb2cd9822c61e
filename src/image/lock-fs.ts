// How far a whole-file lock (flock) on an image reaches, by the file system it lives on: across
// every client of an AFS cell or an NFS server, or this host only. On a network or user-space
// file system whose locks stay on this host (NFS mounted nolock or local_lock=flock|all, FUSE
// file systems that leave flock to the kernel) a second host is not stopped: that is "a file
// system without working locks" (the lock-unsupported setting; `afsfile check` reports it).
import * as fs from 'node:fs';

/**
 * afs: cell-wide, a lease the file server drops after 300 s without extension; nfs: server-wide
 * (NLM or NFSv4 locks); local: a file system of this host (only this host can open the file);
 * host-only: a shared file system whose locks do not leave this host; unknown: none of these.
 */
export type LockReach = 'afs' | 'nfs' | 'local' | 'host-only' | 'unknown';

/** AFS_FS_MAGIC, Linux include/uapi/linux/magic.h: kAFS. */
const KAFS_MAGIC = 0x6b414653;
/** OpenAFS: src/afs/afs_osi.h AFS_SUPER_MAGIC (its Linux super block's s_magic). */
const OPENAFS_MAGIC = 0x5346414f;
/** statfs f_type values, Linux include/uapi/linux/magic.h (OpenAFS: afs/afs_osi.h AFS_SUPER_MAGIC). */
const MAGIC: ReadonlyMap<number, LockReach> = new Map([
  [KAFS_MAGIC, 'afs'],
  [OPENAFS_MAGIC, 'afs'],
  [0x6969, 'nfs'], // NFS_SUPER_MAGIC
  [0x65735546, 'host-only'], // FUSE_SUPER_MAGIC: flock is the kernel's unless the file system takes it
  [0x01021997, 'host-only'], // V9FS_MAGIC
  [0xef53, 'local'], // EXT2/3/4
  [0x58465342, 'local'], // XFS
  [0x9123683e, 'local'], // BTRFS
  [0x01021994, 'local'], // TMPFS
  [0xf2f52010, 'local'], // F2FS
  [0x794c7630, 'local'], // OVERLAYFS
]);

/** The reach of a lock on this open file. `fsMagic`: its statfs f_type when known already
 * (asked where the image was opened, not on the loop: statfs is a server call on AFS). */
export function lockReach(fd: number, fsMagic?: number): LockReach {
  const type = fsType(fd, fsMagic);
  const reach = type === undefined ? 'unknown' : MAGIC.get(type) ?? 'unknown';
  if (reach === 'nfs' && nfsLocksStayLocal(mountOptions(fd))) return 'host-only';
  return reach;
}

/**
 * Whether the lock on this open file must follow the key of each token renewal: on kAFS only.
 * kAFS extends a lock with the key of the open file that took it (fs/afs/flock.c
 * afs_lock_work, vnode->lock_key), which lapses with its token. The OpenAFS client extends
 * every flock it holds once a minute with its own daemon's credentials, whatever the tokens
 * of the process that locked (src/afs/afs_daemons.c afs_Daemon -> afs_vcache.c
 * afs_FlushActiveVcaches(1), afs_osi_credp), and the file server checks no right on an
 * extension (viced/afsfileprocs.c SAFSS_ExtendLock, DONTCHECK): there the lock stays on its
 * open file. Moving it would only open a gap (release, then set) another client could take.
 */
export function lockFollowsKey(fd: number, fsMagic?: number): boolean {
  return fsType(fd, fsMagic) === KAFS_MAGIC;
}

/**
 * Whether the lock must be held by a process of its own (a lock keeper, src/image/lock.ts): on
 * the OpenAFS client. It records a flock's owner as the locking process (afs_vnop_flock.c
 * lockIdSet: getpid(), current->tgid on Linux) and removes that owner's locks at the last close
 * of any open file of the image by the same process (afs_vnop_write.c afs_close: HandleFlock
 * LOCK_UN, compared by lockIdcmp2), and at a refused flock of another open file by it
 * (osi_vnodeops.c afs_linux_flock: the kernel's conflict undoes the grant with F_UNLCK). The
 * device closes such files (a reopen after a token renewal; the close that clears the client's
 * sticky store error, vc_error), and a process that adopted the open file is never the owner,
 * so its last close would release nothing. A keeper does nothing but hold the lock.
 */
export function lockNeedsKeeper(fd: number, fsMagic?: number): boolean {
  return fsType(fd, fsMagic) === OPENAFS_MAGIC;
}

/** statfs f_type of an open file (given, or asked through its magic link), if it can be had. */
function fsType(fd: number, fsMagic?: number): number | undefined {
  if (fsMagic) return fsMagic;
  try {
    // Through the fd's magic link: the file that is open, whatever its name is now.
    return Number(fs.statfsSync(`/proc/self/fd/${fd}`).type);
  } catch {
    return undefined;
  }
}

/** NFS mount options under which flock never reaches the server (nfs(5): nolock, local_lock). */
export function nfsLocksStayLocal(options: readonly string[]): boolean {
  return options.includes('nolock') || options.includes('local_lock=flock') || options.includes('local_lock=all');
}

/** The mount and super options of the mount an fd is on (fdinfo mnt_id, then mountinfo). */
function mountOptions(fd: number): string[] {
  try {
    const id = /^mnt_id:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
    if (id === undefined) return [];
    for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const f = line.split(' ');
      if (f[0] !== id) continue;
      const sep = f.indexOf('-');
      return [...(f[5] ?? '').split(','), ...(sep > 0 ? (f[sep + 3] ?? '').split(',') : [])];
    }
  } catch {
    // No /proc: nothing known.
  }
  return [];
}

/** Whether a lock there keeps other hosts out (or no other host can open the file). */
export function lockWorks(reach: LockReach): boolean {
  return reach !== 'host-only';
}
