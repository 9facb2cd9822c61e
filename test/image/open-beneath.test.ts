// Images confined beneath image-roots (src/image/open-beneath.ts, issue 19 defect 8): a symlink
// or ".." leaving the root, a /proc magic link, a FIFO, a device or a directory is refused with
// a message naming the image; symlinks inside the root (the OpenAFS @cell alias) still work.
// Each case both through openat2 and through the fallback for kernels without it.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Image, ImageError, type OpenOptions } from '../../src/image/image';
import { useOpenat2ForTests } from '../../src/image/open-beneath';
import { withTempDir } from '../helpers/temp';

const O_NONBLOCK = fs.constants.O_NONBLOCK;

function img(p: string, size = 1 << 20): string {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, Buffer.alloc(0));
  fs.truncateSync(p, size);
  return p;
}

/** A tree: DIR/root (the image root) and DIR/outside, with the links each case needs. */
function tree(dir: string): { root: string; outside: string; secret: string } {
  const root = path.join(dir, 'root');
  const outside = path.join(dir, 'outside');
  img(path.join(root, 'sub/a.img'));
  const secret = img(path.join(outside, 'secret.img'));
  fs.symlinkSync(secret, path.join(root, 'abs-escape.img'));
  fs.symlinkSync('../outside/secret.img', path.join(root, 'rel-escape.img'));
  fs.symlinkSync('../outside', path.join(root, 'dir-escape'));
  fs.symlinkSync('sub', path.join(root, 'alias')); // as /afs/@cell -> example.org
  fs.symlinkSync('sub/a.img', path.join(root, 'link.img'));
  execFileSync('mkfifo', [path.join(root, 'fifo.img')]);
  fs.mkdirSync(path.join(root, 'dir.img'));
  return { root, outside, secret };
}

/** Opens (sync or async) and gives the error, or closes the image and gives it back. */
async function tryOpen(p: string, opts: OpenOptions, how: 'sync' | 'async'): Promise<ImageError | Image> {
  try {
    const im = how === 'sync' ? Image.open(p, opts) : await Image.openAsync(p, opts);
    im.close();
    return im;
  } catch (e) {
    if (!(e instanceof ImageError)) throw e;
    return e;
  }
}

async function refused(p: string, opts: OpenOptions, how: 'sync' | 'async', why: RegExp): Promise<void> {
  const r = await tryOpen(p, opts, how);
  assert.ok(r instanceof ImageError, `${p} (${how}) was opened`);
  assert.ok(why.test((r as ImageError).message), `${how}: ${(r as ImageError).message}`);
  assert.ok((r as ImageError).message.startsWith(p), `names the image: ${(r as ImageError).message}`);
}

for (const mode of ['openat2', 'fallback'] as const) {
  for (const how of ['sync', 'async'] as const) {
    test(`${mode}, ${how}: symlinks and ".." that leave the root are refused, those inside work`, () =>
      withTempDir(async (dir) => {
        useOpenat2ForTests(mode === 'openat2');
        try {
          const { root, outside, secret } = tree(dir);
          const opts = { readOnly: false, roots: [root] };
          for (const name of ['sub/a.img', 'alias/a.img', 'link.img', 'sub/../sub/a.img']) {
            // Joined as strings: path.join would take the ".." away before the open sees it.
            const r = await tryOpen(`${root}/${name}`, opts, how);
            assert.ok(r instanceof Image, `${name}: ${(r as Error).message}`);
            assert.is((r as Image).realpath, path.join(fs.realpathSync(root), 'sub/a.img'));
          }
          // The root named with a trailing slash.
          const slash = await tryOpen(path.join(root, 'sub/a.img'), { readOnly: true, roots: [`${root}/`] }, how);
          assert.ok(slash instanceof Image);
          for (const name of ['abs-escape.img', 'rel-escape.img', 'dir-escape/secret.img', '../outside/secret.img',
            'sub/../../outside/secret.img']) {
            await refused(`${root}/${name}`, opts, how, /leads outside its image root/);
          }
          await refused(secret, opts, how, /not beneath any image root/);
          await refused(`${outside}/../root-not/x.img`, opts, how, /not beneath any image root/);
          await refused('sub/a.img', opts, how, /not an absolute path/);
          // Without roots: anywhere, symlinks followed (as before).
          assert.ok(await tryOpen(path.join(root, 'abs-escape.img'), { readOnly: true }, how) instanceof Image);
        } finally {
          useOpenat2ForTests(true);
        }
      }));

    test(`${mode}, ${how}: a FIFO (no hang, also read-only), a device, a directory are refused`, () =>
      withTempDir(async (dir) => {
        useOpenat2ForTests(mode === 'openat2');
        try {
          const { root } = tree(dir);
          for (const readOnly of [true, false]) {
            const opts = { readOnly, roots: [root] };
            // A FIFO opened for reading without O_NONBLOCK waits for a writer forever: the
            // runner's timeout would be the failure.
            await refused(path.join(root, 'fifo.img'), opts, how, /is a FIFO, not a regular file/);
            await refused(path.join(root, 'dir.img'), opts, how, /is a directory/);
            await refused('/dev/null', { readOnly, roots: ['/dev'] }, how, /is a character device, not a regular/);
          }
        } finally {
          useOpenat2ForTests(true);
        }
      }));
  }
}

test('a /proc magic link is refused (RESOLVE_NO_MAGICLINKS), even without roots', () => withTempDir(async (dir) => {
  const a = img(path.join(dir, 'a.img'));
  const fd = fs.openSync(a, 'r');
  try {
    await refused(`/proc/self/fd/${fd}`, { readOnly: true }, 'sync', /magic link/);
    await refused(`/proc/self/fd/${fd}`, { readOnly: true }, 'async', /magic link/);
  } finally {
    fs.closeSync(fd);
  }
}));

test('the image fd is left blocking (io_uring answers EAGAIN on an O_NONBLOCK file)', () => withTempDir(async (dir) => {
  const a = img(path.join(dir, 'root/a.img'));
  for (const how of ['sync', 'async'] as const) {
    const im = how === 'sync' ? Image.open(a, { readOnly: false, roots: [path.join(dir, 'root')] })
      : await Image.openAsync(a, { readOnly: false, roots: [path.join(dir, 'root')] });
    try {
      const info = fs.readFileSync(`/proc/self/fdinfo/${im.fd}`, 'utf8');
      const flags = Number.parseInt(/flags:\s+([0-7]+)/.exec(info)![1]!, 8);
      assert.is(flags & O_NONBLOCK, 0, `${how}: O_NONBLOCK still set (flags 0${flags.toString(8)})`);
      assert.is(flags & 3, fs.constants.O_RDWR, "O_ACCMODE: read-write");
    } finally {
      im.close();
    }
  }
}));

test.run();
