// `afsfile check`: whether the image lock keeps other hosts out where the images are (each of
// image-roots), and which attached devices run without it (lock-unsupported=warn let them).
import * as fs from 'node:fs';
import { type LockReach, lockReach, lockWorks } from '../image/lock-fs';
import type { Finding } from './check-command';
import { mergeStatus } from './status-command';

const REACH: Readonly<Record<LockReach, string>> = {
  afs: 'AFS: a lease the file server keeps for every client of the cell (300 s, extended by the client)',
  nfs: 'NFS: kept by the server for every client',
  local: 'a local file system: only this host opens these files',
  'host-only': 'a shared file system whose locks stay on this host: another host is not stopped',
  unknown: 'an unknown file system: the lock is the kernel\'s; whether other hosts see it is not known',
};

export function checkLocks(runDir: string, roots: readonly string[]): Finding[] {
  const out: Finding[] = [];
  for (const root of roots) {
    let fd: number;
    try {
      fd = fs.openSync(root, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch (e) {
      const detail = `${root}: ${(e as Error).message}`;
      out.push({ check: 'image lock', ok: false, detail, fix: 'check image-roots' });
      continue;
    }
    const reach = lockReach(fd);
    fs.closeSync(fd);
    out.push(lockWorks(reach)
      ? { check: 'image lock', ok: true, detail: `${root}: ${REACH[reach]}` }
      : {
        check: 'image lock', ok: false, detail: `${root}: ${REACH[reach]}`,
        fix: 'mount NFS with locking (no nolock, local_lock=none); keep images of several hosts on AFS or NFS; ' +
          'lock-unsupported=refuse refuses such images',
      });
  }
  const unlocked = mergeStatus(runDir).devices.filter((d) => d.running && d.lock?.state === 'none');
  if (unlocked.length) {
    out.push({
      check: 'image lock', ok: false,
      detail: unlocked.map((d) => `${d.domid}/${d.vdev} ${d.image ?? '?'}: not locked (${d.lock?.note ?? '?'})`)
        .join('; '),
      fix: 'move these images to a file system with working locks (lock-unsupported=warn let them attach)',
    });
  }
  return out;
}
