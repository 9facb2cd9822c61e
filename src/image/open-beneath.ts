// Opening an image file as the worker does: root, with tokens, so the path must not lead it
// elsewhere. With image roots configured (image-roots), the image is opened beneath one of
// them by openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): symlinks inside the root work (the
// OpenAFS @cell alias is one), but no symlink, ".." or /proc/N/fd link may leave it, and the
// whole walk is one system call (nothing swapped in meanwhile can redirect it). Without roots
// the path is walked as given, magic links still refused. Always O_NONBLOCK | O_NOCTTY (a FIFO
// swapped in must not hang the open, a tty must not become ours), then S_ISREG on the open
// file, then O_NONBLOCK is cleared (io_uring would answer EAGAIN on such a file).
//
// Without openat2 (ENOSYS: Linux before 5.6, or a seccomp filter) the fallback resolves the
// path with realpath, checks it lies under the resolved root, opens that with O_NOFOLLOW, and
// checks again where the open file really is (/proc/self/fd): a swap between the two steps is
// then refused, not followed.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { native } from '../native/addon';
import { ImageError } from './image-error';
import { errnoError } from './thread-io';

/** Flags every image open adds (O_CLOEXEC comes from the addon). */
const OPEN_EXTRA = fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY;

export interface OpenedFile {
  readonly fd: number;
  /** Where the open file is (/proc/self/fd), for telling two names of one image apart. */
  readonly real: string;
  /** What the open's own thread learnt of the file (openImageFileAsync), so that nothing on
   * the loop asks the file system again; absent after the other opens. */
  readonly facts?: FileFacts;
}

/** Of an open regular file: fstat, fstatfs and the hole-punch probe, made where it was opened. */
export interface FileFacts {
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  /** statfs f_type (0: unknown). */
  readonly fsMagic: number;
  /** Holes can be punched (probed for writable opens only; false otherwise). */
  readonly canPunch: boolean;
}

interface Located {
  /** The configured root the image is beneath, or null without roots. */
  readonly root: string | null;
  /** That root resolved (realpath), for the fallback's checks. */
  readonly realRoot: string | undefined;
  /** The path to walk: beneath root, or the whole path without roots. */
  readonly rel: string;
}

/** Test hook: false makes every open take the fallback, as on a kernel without openat2. */
let openat2Usable = true;
export function useOpenat2ForTests(on: boolean): void {
  openat2Usable = on;
}

/** Which configured root the image path names, lexically (".." stays in rel for openat2 to judge). */
function locate(path: string, roots: readonly string[], realRoots: readonly (string | undefined)[]): Located {
  if (roots.length === 0) return { root: null, realRoot: undefined, rel: path };
  if (!path.startsWith('/')) {
    throw new ImageError(path, 'is not an absolute path (image-roots are set: images are named by absolute paths)',
      'EINVAL');
  }
  for (let i = 0; i < roots.length; i++) {
    for (const prefix of [trimSlash(roots[i]!), realRoots[i]]) {
      if (prefix === undefined) continue;
      const head = prefix === '/' ? '/' : `${prefix}/`;
      if (!path.startsWith(head)) continue;
      const rel = path.slice(head.length).replace(/^\/+/, '');
      if (rel !== '') return { root: roots[i]!, realRoot: realRoots[i], rel };
    }
  }
  throw new ImageError(path, `is not beneath any image root (image-roots = ${roots.join(', ')}); ` +
    'move the image there or add its directory to image-roots', 'EACCES');
}

function trimSlash(p: string): string {
  const t = p.replace(/\/+$/, '');
  return t === '' ? '/' : t;
}

function resolveFlags(root: string | null): number {
  const a = native();
  return (root === null ? 0 : a.RESOLVE_BENEATH) | a.RESOLVE_NO_MAGICLINKS;
}

function realRootSync(r: string): string | undefined {
  try {
    return fs.realpathSync(r);
  } catch {
    return undefined;
  }
}

/** Opens an image file (see the top of this file); throws ImageError, or an errno error for explain(). */
export function openImageFile(path: string, flags: number, roots: readonly string[]): OpenedFile {
  const reals = roots.map(realRootSync);
  const at = locate(path, roots, reals);
  if (openat2Usable) {
    try {
      const fd = native().openBeneath(at.root, at.rel, flags | OPEN_EXTRA, resolveFlags(at.root));
      return finish(path, fd, at, false);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.errno !== ENOSYS || e.syscall !== 'openat2') throw beneathError(path, at, e);
    }
  }
  return fallbackSync(path, flags, at);
}

/**
 * openImageFile without blocking the event loop, and without libuv's thread pool: the open and
 * everything asked of the new file run on a thread of their own (src/native/thread-op.c), so a
 * hung file server stalls this open alone. Without roots the path is stat'ed first on that
 * thread (a device node or FIFO is refused before any open). `writable`: probe hole punching.
 */
export async function openImageFileAsync(path: string, flags: number, roots: readonly string[],
  writable = false): Promise<OpenedFile> {
  const at = await locateAsync(path, roots);
  if (openat2Usable) {
    const a = native();
    const how = (at.root === null && roots.length === 0 ? a.OPEN_STAT_FIRST : 0) | (writable ? a.OPEN_PUNCH_PROBE : 0);
    const r = await new Promise<{ errno: number; syscall: string; fd: number; info: number[]; real: string }>(
      (resolve) => a.threadOpen(at.root, at.rel, flags | OPEN_EXTRA, resolveFlags(at.root), how,
        (errno, syscall, fd, info, real) => resolve({ errno, syscall, fd, info, real })));
    const [dev = 0, ino = 0, size = 0, mode = 0, fsMagic = 0, punch = 0] = r.info;
    if (r.errno === 0 && r.fd < 0) throw notRegularMode(path, mode);
    if (r.errno === 0) {
      return { fd: r.fd, real: r.real || path, facts: { dev, ino, size, fsMagic, canPunch: punch === 1 } };
    }
    if (r.syscall === 'stat') throw errnoError(r.errno, 'stat');
    if (r.errno !== ENOSYS || r.syscall !== 'openat2') throw beneathError(path, at, errnoError(r.errno, r.syscall));
  }
  // Without openat2 (a kernel before 5.6): the fallback's calls go through the pool, and its
  // checks need the root resolved.
  const fat = at.root !== null && at.realRoot === undefined
    ? { ...at, realRoot: await fs.promises.realpath(at.root).catch(() => undefined) } : at;
  const real = await fs.promises.realpath(path).catch((e: NodeJS.ErrnoException) => {
    throw beneathError(path, fat, e);
  });
  checkUnderRoot(path, real, fat);
  const fd = await new Promise<number>((resolve, reject) => fs.open(real, fallbackFlags(flags), (e, n) => {
    if (e) reject(beneathError(path, fat, e));
    else resolve(n);
  }));
  return finish(path, fd, fat, true);
}

/**
 * Which root the path is beneath, resolving the roots (realpath, a walk on the file system)
 * only when the path names none of them as configured: an attach normally walks nothing here.
 */
async function locateAsync(path: string, roots: readonly string[]): Promise<Located> {
  try {
    return locate(path, roots, roots.map(() => undefined));
  } catch (e) {
    if (!(e instanceof ImageError) || e.code !== 'EACCES') throw e;
  }
  const reals = await Promise.all(roots.map((r) => fs.promises.realpath(r).catch(() => undefined)));
  return locate(path, roots, reals);
}

const { ENOSYS } = os.constants.errno;

function fallbackFlags(flags: number): number {
  return flags | OPEN_EXTRA | fs.constants.O_NOFOLLOW; // libuv adds O_CLOEXEC
}

function fallbackSync(path: string, flags: number, at: Located): OpenedFile {
  let real: string;
  let fd: number;
  try {
    real = fs.realpathSync(path);
  } catch (err) {
    throw beneathError(path, at, err as NodeJS.ErrnoException);
  }
  checkUnderRoot(path, real, at);
  try {
    fd = fs.openSync(real, fallbackFlags(flags));
  } catch (err) {
    throw beneathError(path, at, err as NodeJS.ErrnoException);
  }
  return finish(path, fd, at, true);
}

/** The fallback's check: the file (as resolved, or as opened) lies under the resolved root. */
function checkUnderRoot(path: string, real: string, at: Located): void {
  if (at.root === null) return;
  const realRoot = at.realRoot;
  if (realRoot === undefined) throw new ImageError(path, `its image root ${at.root} cannot be resolved`, 'ENOENT');
  if (!(realRoot === '/' ? real.startsWith('/') : real.startsWith(`${realRoot}/`))) throw escapes(path, at.root);
}

/**
 * After the open: a regular file only; O_NONBLOCK off; where the open file really is (checked
 * against the root again when `verify`: the fallback's walk was not confined).
 */
function finish(path: string, fd: number, at: Located, verify: boolean): OpenedFile {
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw notRegular(path, st);
    native().clearNonblock(fd);
    let real: string;
    try {
      real = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      real = path; // no /proc: the name given is what there is
    }
    if (verify) checkUnderRoot(path, real, at);
    return { fd, real };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

/** notRegular from a stat's st_mode. */
function notRegularMode(path: string, mode: number): ImageError {
  const t = mode & fs.constants.S_IFMT;
  const c = fs.constants;
  const is = (k: number) => (): boolean => t === k;
  return notRegular(path, {
    isDirectory: is(c.S_IFDIR), isFIFO: is(c.S_IFIFO), isCharacterDevice: is(c.S_IFCHR),
    isBlockDevice: is(c.S_IFBLK), isSocket: is(c.S_IFSOCK),
  });
}

type Kind = Pick<fs.Stats, 'isDirectory' | 'isFIFO' | 'isCharacterDevice' | 'isBlockDevice' | 'isSocket'>;

/** What a non-regular file is, for the administrator. */
export function notRegular(path: string, st: Kind): ImageError {
  if (st.isDirectory()) return new ImageError(path, 'is a directory, not an image file', 'EISDIR');
  const kind = st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() ? 'a character device' : st.isBlockDevice()
    ? 'a block device' : st.isSocket() ? 'a socket' : 'an unknown kind of file';
  return new ImageError(path, `is ${kind}, not a regular file (afsfile serves image files; use the default ` +
    'block script for devices)', 'EINVAL');
}

function escapes(path: string, root: string): ImageError {
  return new ImageError(path, `leads outside its image root ${root} (through a symlink or "..") and is refused; ` +
    'name the image by a path that stays beneath the root', 'EXDEV');
}

/** openat2's own refusals, phrased; other errors go on to the caller's explain(). */
function beneathError(path: string, at: Located, e: NodeJS.ErrnoException): Error {
  const code = e.code ?? (typeof e.errno === 'number' ? codeOf(e.errno) : undefined);
  if (e.syscall === 'open(root)') {
    return new ImageError(path, `its image root ${at.root ?? '?'} cannot be opened (${code ?? e.message})`, code);
  }
  if (code === 'EXDEV' && at.root !== null) return escapes(path, at.root);
  if (code === 'ELOOP') {
    return new ImageError(path, 'has too many levels of symbolic links, or a /proc magic link (refused)', code);
  }
  if (code === 'EISDIR') return new ImageError(path, 'is a directory, not an image file', code);
  if (code === 'ENXIO') return new ImageError(path, 'is not a regular file (a device without its driver?)', code);
  if (code !== undefined && e.code === undefined) e.code = code;
  return e;
}

function codeOf(errno: number): string | undefined {
  for (const [name, value] of Object.entries(os.constants.errno)) if (value === errno) return name;
  return undefined;
}

export const forTests = { locate };
