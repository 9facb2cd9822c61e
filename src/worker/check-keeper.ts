// `afsfile check`: whether this host can start a lock keeper, the process that holds an image
// lock on the OpenAFS client (src/image/lock.ts). It is exec'd from a memfd: a host that forbids
// executing memfds (sysctl vm.memfd_noexec=2, a security module) or forking (a seccomp profile)
// cannot lock images on OpenAFS, and refuses their attach. Tried on a file of its own.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { keeperOnThread } from '../image/thread-io';
import type { Finding } from './check-command';

/** Where the OpenAFS client answers (its module loaded): there a keeper is needed. */
const OPENAFS_PROC = '/proc/fs/openafs';

export async function checkKeeper(): Promise<Finding> {
  const check = 'lock keeper';
  const needed = fs.existsSync(OPENAFS_PROC);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'afsfile-check-'));
  const file = path.join(dir, 'lock');
  try {
    fs.writeFileSync(file, '');
    const fd = fs.openSync(file, 'r');
    const k = await keeperOnThread(fd, false).finally(() => fs.closeSync(fd));
    if (typeof k === 'object' && !(k instanceof Error)) {
      let rss = '?';
      try {
        rss = /^VmRSS:\s+(\d+ kB)/m.exec(fs.readFileSync(`/proc/${k.pid}/status`, 'utf8'))?.[1] ?? '?';
      } finally {
        fs.closeSync(k.socket);
      }
      return { check, ok: true, detail: `starts (${rss}): ${needed ? 'it holds each image lock on this OpenAFS client'
        : 'needed for images on the OpenAFS client (not loaded here)'}` };
    }
    const why = typeof k === 'number' ? `its lock of a file of its own was refused (errno ${k})` : k.message;
    return {
      check, ok: !needed,
      detail: `cannot start (${why})${needed ? ': images on OpenAFS cannot be locked, their attach is refused' : ''}`,
      fix: 'allow afsfile to fork and to execute a memfd (sysctl vm.memfd_noexec=0 or 1; a seccomp profile or ' +
        'systemd SystemCallFilter permitting fork, memfd_create and execveat)',
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
