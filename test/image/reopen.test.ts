// Image.reopen (new AFS tokens: kAFS writes back with the key of the open file): later I/O goes
// to a new descriptor, the old one is closed only when the operations under way on it ended,
// and a name that now leads to another file is refused with the old descriptor kept.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Image } from '../../src/image/image';
import { tempDir } from '../helpers/exe';

const isOpen = (fd: number): boolean => {
  try { fs.fstatSync(fd); return true; } catch (e) { return (e as NodeJS.ErrnoException).code !== 'EBADF'; }
};
const write = (img: Image, buf: Uint8Array, off: number) => new Promise<void>((res, rej) => img.write(buf, off, (e) => (e ? rej(e) : res())));
const fsync = (img: Image) => new Promise<void>((res, rej) => img.fsync((e) => (e ? rej(e) : res())));

test('reopen: a write under way finishes on the old descriptor, which is closed after it; later I/O on the new one', async () => {
  const { dir, cleanup } = tempDir('afsfile-reopen-');
  try {
    const file = path.join(dir, 'a.img');
    fs.writeFileSync(file, Buffer.alloc(1 << 20));
    const img = Image.open(file, { readOnly: false });
    const first = img.fd;
    const a = Buffer.alloc(65536, 0xa1);
    let doneA = false;
    const pendingA = new Promise<void>((res, rej) => img.write(a, 0, (e) => { doneA = true; if (e) rej(e); else res(); }));
    img.reopen();
    const second = img.fd;
    assert.is.not(second, first);
    if (!doneA) assert.ok(isOpen(first), 'not closed under the write still running on it');
    await pendingA;
    assert.not.ok(isOpen(first), 'the old descriptor is closed once its write ended');
    await write(img, Buffer.alloc(65536, 0xb2), 65536);
    await fsync(img);
    img.reopen(); // nothing under way: closed at once
    assert.not.ok(isOpen(second));
    const got = fs.readFileSync(file);
    assert.ok(got.subarray(0, 65536).equals(a), 'the write before the reopen landed');
    assert.ok(got.subarray(65536, 131072).equals(Buffer.alloc(65536, 0xb2)), 'the write after it too');
    img.close();
    assert.not.ok(isOpen(img.fd));
  } finally {
    cleanup();
  }
});

test('reopen refuses a name that now leads to another file; the old descriptor stays in use', async () => {
  const { dir, cleanup } = tempDir('afsfile-reopen-');
  try {
    const file = path.join(dir, 'b.img');
    fs.writeFileSync(file, Buffer.alloc(65536));
    const img = Image.open(file, { readOnly: false });
    const fd = img.fd;
    fs.renameSync(file, path.join(dir, 'moved.img'));
    fs.writeFileSync(file, Buffer.alloc(65536));
    assert.throws(() => img.reopen(), /another file now/);
    assert.is(img.fd, fd);
    await write(img, Buffer.alloc(4096, 7), 0);
    assert.is(fs.readFileSync(path.join(dir, 'moved.img'))[0], 7, 'I/O still goes to the file being served');
    img.close();
  } finally {
    cleanup();
  }
});

test.run();
