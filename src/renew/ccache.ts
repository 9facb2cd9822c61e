// The private credential cache: <run-dir>/renew/krb5cc in a directory only renew's user can
// enter (0700), the file itself 0600. Its name reaches only renew's own children (aklog, the
// worker) through KRB5CCNAME, never a status file or another process's environment.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FatalError } from '../cli/errors';

export function defaultCcache(runDir: string): string {
  return path.join(runDir, 'renew', 'krb5cc');
}

/** Makes the cache's directory private, refusing a directory someone else could have planted. */
export function prepareCcacheDir(ccache: string, isDefault: boolean): void {
  const dir = path.dirname(ccache);
  fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new FatalError(`cannot create ${dir}: ${(e as Error).message}`);
  }
  const st = fs.lstatSync(dir);
  const uid = process.getuid?.() ?? 0;
  if (!st.isDirectory() || st.uid !== uid) {
    throw new FatalError(`${dir} must be a directory owned by uid ${uid} (it holds the credential cache); remove it or choose another --ccache`);
  }
  // Ours: make it private even if an older version or an administrator loosened it. A directory
  // named by --ccache may be shared on purpose; only warn-free tightening of our own default.
  if (isDefault && (st.mode & 0o077) !== 0) fs.chmodSync(dir, 0o700);
}
