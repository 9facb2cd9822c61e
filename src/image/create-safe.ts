// `afsfile create --preallocate` without ever leaving a short image under the final name (xl
// would attach it): the data goes to a temporary name beside it, is fsynced (a phase of its own:
// on AFS that is when the data reaches the file server), then linked to the final name, which
// fails rather than replace a file that appeared meanwhile. SIGINT, SIGTERM and SIGHUP remove
// the temporary file. Async, so that the signal handlers run between writes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SECTOR_SIZE } from '../blkif/constants';
import { Progress } from '../util/progress';
import { formatBytes } from '../util/units';
import { ImageError } from './image';

const CHUNK = 8 * 1024 * 1024;
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const SIGNAL_EXIT: Record<string, number> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };
const APPEARED = 'appeared while it was being created; afsfile create never overwrites';
/** link(2) errors of file systems without hard links: fall back to a checked rename. */
const NO_LINKS = ['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EMLINK'];

export function tempNameFor(final: string): string {
  return path.join(path.dirname(final), `.${path.basename(final)}.afsfile-create-${process.pid}`);
}

/** Moves tmp to final without replacing anything there (link + unlink; rename if the file
 * system has no hard links, after checking). */
function publish(tmp: string, final: string): void {
  try {
    fs.linkSync(tmp, final);
    fs.unlinkSync(tmp);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new ImageError(final, `${APPEARED} (the new data is removed)`, code);
    if (!NO_LINKS.includes(code ?? '')) throw err;
  }
  if (fs.existsSync(final)) throw new ImageError(final, APPEARED, 'EEXIST');
  fs.renameSync(tmp, final);
}

export async function createPreallocated(final: string, size: number, quiet: boolean): Promise<void> {
  if (!Number.isSafeInteger(size) || size <= 0 || size % SECTOR_SIZE !== 0)
    throw new ImageError(final, `size must be a positive multiple of ${SECTOR_SIZE} bytes, got ${size}`, 'EINVAL');
  if (fs.existsSync(final)) {
    throw new ImageError(final, 'already exists; afsfile create never overwrites (remove it first)', 'EEXIST');
  }
  const tmp = tempNameFor(final);
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ImageError(final, `cannot create ${tmp}: ${e.message}`, e.code);
  }
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals): void => { interrupted = sig; };
  for (const s of SIGNALS) process.on(s, onSignal);
  const say = (line: string): void => { if (!quiet) process.stderr.write(`${line}\n`); };
  try {
    // Written, not fallocate'd: AFS and some other file systems do not support fallocate,
    // and the administrator asked for the space to be really there.
    const zeros = Buffer.alloc(Math.min(CHUNK, size));
    const progress = new Progress('allocating', size, quiet);
    for (let off = 0; off < size; off += zeros.length) {
      if (interrupted) break;
      const n = Math.min(zeros.length, size - off);
      let w = 0;
      while (w < n) w += (await fh.write(zeros, w, n - w, off + w)).bytesWritten;
      progress.update(off + n);
    }
    if (!interrupted) {
      progress.done();
      say(`fsync: making sure all ${formatBytes(size)} are stored (on AFS: sent to the file server)`);
      const t0 = Date.now();
      await fh.sync();
      say(`fsync: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    await fh.close();
    if (interrupted) {
      fs.rmSync(tmp, { force: true });
      say(`interrupted (${interrupted}): removed the partial ${tmp}; ${final} was not created`);
      process.exit(SIGNAL_EXIT[interrupted] ?? 1);
    }
    publish(tmp, final);
  } catch (err) {
    await fh.close().catch(() => undefined);
    fs.rmSync(tmp, { force: true });
    if (err instanceof ImageError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new ImageError(final, `cannot allocate ${formatBytes(size)}: ${e.message}`, e.code);
  } finally {
    for (const s of SIGNALS) process.off(s, onSignal);
  }
}
