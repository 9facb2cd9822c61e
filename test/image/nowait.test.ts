// The thread-pool path (io_uring off; src/image/uring.ts is the default where the kernel allows
// it). Buffered reads served inline by preadv2(RWF_NOWAIT) when the page cache has the data, by the
// thread pool otherwise: the same bytes either way, the same errors at end of file, and a file
// system that refuses NOWAIT (tmpfs on this kernel) falls back for good.
//
// Which pages are cached is set up for real: the file is read once buffered (all cached), then
// chosen ranges are rewritten with O_DIRECT, which drops those pages from the cache — whole
// folios, up to 2 MiB on ext4 here (measured), hence the 2 MiB-aligned ranges. A NOWAIT miss
// starts readahead, so only the first read of an evicted range is sure to miss.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlkifOp } from '../../src/blkif/constants';
import { Image } from '../../src/image/image';
import { native } from '../../src/native/addon';
import { LIMITS, Rig, rwReq } from '../engine/fixture';

// /var/tmp: on disk (ext4 here), unlike a tmpfs /tmp elsewhere; NOWAIT reads need a disk fs.
const dir = fs.mkdtempSync(path.join(fs.existsSync('/var/tmp') ? '/var/tmp' : os.tmpdir(), 'afsfile-nowait-'));
const SIZE = 8 << 20;
const { EOPNOTSUPP, EBADF } = os.constants.errno;

/** Writes data at offset with O_DIRECT (page-aligned): those pages leave the page cache. */
function evict(file: string, offset: number, data: Uint8Array): void {
  const buf = new Uint8Array(native().allocAligned(data.length, 4096));
  buf.set(data);
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_DIRECT);
  try {
    assert.is(fs.writeSync(fd, buf, 0, buf.length, offset), buf.length);
  } finally {
    fs.closeSync(fd);
  }
}

/** A random image, wholly in the page cache; returns its bytes. */
function cachedFile(name: string): { file: string; data: Uint8Array } {
  const file = path.join(dir, name);
  const data = new Uint8Array(randomBytes(SIZE));
  fs.writeFileSync(file, data);
  const fd = fs.openSync(file, 'r');
  fs.fdatasyncSync(fd); // dirty pages would stay in the cache through an O_DIRECT write
  fs.closeSync(fd);
  fs.readFileSync(file);
  return { file, data };
}

function read(img: Image, offset: number, length: number): Promise<{ err: NodeJS.ErrnoException | null; bytes: Uint8Array; sync: boolean }> {
  return new Promise((resolve) => {
    const bytes = new Uint8Array(length);
    let returned = false;
    img.read(bytes, offset, (err) => resolve({ err, bytes, sync: !returned }));
    returned = true;
  });
}

/** Whether the file system of `where` serves RWF_NOWAIT reads (probed on a scratch file). */
function nowaitWorks(where: string): boolean {
  const f = path.join(where, `probe-${process.pid}`);
  fs.writeFileSync(f, Buffer.alloc(4096, 1));
  const fd = fs.openSync(f, 'r');
  try {
    fs.readSync(fd, Buffer.alloc(4096), 0, 4096, 0);
    return native().preadv2(fd, new Uint8Array(4096), 0, native().RWF_NOWAIT) === 4096;
  } finally {
    fs.closeSync(fd);
    fs.rmSync(f);
  }
}

const diskOk = nowaitWorks(dir);
if (!diskOk) console.log(`  ${dir}: no RWF_NOWAIT reads on this file system; the inline-path tests are skipped`);
const onDisk = diskOk ? test : test.skip;

test('the addon: RWF_NOWAIT from the headers; failures come back as -errno, not thrown', () => {
  const a = native();
  assert.is(a.RWF_NOWAIT, 8, 'RWF_NOWAIT as in <linux/fs.h>');
  const file = path.join(dir, 'addon');
  fs.writeFileSync(file, Buffer.alloc(8192, 7));
  const fd = fs.openSync(file, 'r');
  const buf = new Uint8Array(4096);
  assert.is(a.preadv2(fd, buf, 4096, 0), 4096);
  assert.is(buf[4095], 7);
  assert.is(a.preadv2(fd, buf, 8192, 0), 0, 'EOF: 0');
  assert.is(a.preadv2(fd, buf, 6144, 0), 2048, 'short at EOF');
  assert.is(a.pwritev2(fd, buf, 0, 0), -EBADF, 'write on a read-only fd');
  fs.closeSync(fd);
  assert.is(a.preadv2(fd, buf, 0, a.RWF_NOWAIT), -EBADF, 'closed fd');
  assert.throws(() => a.preadv2(-1, buf, -1, 0), /negative/);
});

onDisk('inline and pool reads return the same bytes on a file partly in the page cache', async () => {
  const { file, data } = cachedFile('mixed.img');
  // Two ranges out of the cache, with new contents (a stale cached page would show).
  for (const [at, len] of [[2 << 20, 2 << 20], [6 << 20, 2 << 20]] as const) {
    const fresh = new Uint8Array(randomBytes(len));
    evict(file, at, fresh);
    data.set(fresh, at);
  }
  const inline = Image.open(file, { readOnly: true, uring: false });
  const pool = Image.open(file, { readOnly: true, nowait: false, uring: false });
  // Deterministic first: a hit (answered inside read()), a miss (EAGAIN; answered later, by the
  // pool), one read not tried after the miss, and a read whose start only is cached.
  let r = await read(inline, 4096, 8192);
  assert.equal(r.bytes, data.subarray(4096, 4096 + 8192));
  assert.ok(r.sync, 'a hit is answered inside read()');
  assert.equal(inline.nowaitStats, { hits: 1, partial: 0, misses: 0, skipped: 0, enabled: true });
  r = await read(inline, 3 << 20, 4096);
  assert.equal(r.bytes, data.subarray(3 << 20, (3 << 20) + 4096));
  assert.not.ok(r.sync, 'a miss is answered by the pool');
  assert.equal(inline.nowaitStats, { hits: 1, partial: 0, misses: 1, skipped: 0, enabled: true });
  r = await read(inline, 4096, 4096);
  assert.equal(r.bytes, data.subarray(4096, 8192));
  assert.not.ok(r.sync, 'not tried right after a miss');
  assert.equal(inline.nowaitStats, { hits: 1, partial: 0, misses: 1, skipped: 1, enabled: true });
  // Evicted again just before: readahead from the reads above may have brought it back (the
  // host's read_ahead_kb is 8 MiB here), and then this read would be a whole hit.
  evict(file, 6 << 20, data.subarray(6 << 20, 8 << 20));
  r = await read(inline, (6 << 20) - 4096, 16384);
  assert.equal(r.bytes, data.subarray((6 << 20) - 4096, (6 << 20) + 12288));
  assert.equal(inline.nowaitStats, { hits: 1, partial: 1, misses: 1, skipped: 1, enabled: true });
  // Then random reads (sector-aligned, up to 128 KiB), a burst in flight at a time, both ways.
  let seed = 12345;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
  for (let burst = 0; burst < 20; burst++) {
    const reqs = Array.from({ length: 16 }, () => {
      const len = (1 + rnd(256)) * 512;
      return { at: rnd((SIZE - len) / 512 + 1) * 512, len };
    });
    const got = await Promise.all(reqs.map(({ at, len }) => Promise.all([read(inline, at, len), read(pool, at, len)])));
    got.forEach(([a, b], i) => {
      const { at, len } = reqs[i]!;
      assert.is(a.err, null);
      assert.is(b.err, null);
      assert.equal(a.bytes, data.subarray(at, at + len), `inline read at ${at} (+${len})`);
      assert.equal(b.bytes, a.bytes);
      assert.not.ok(b.sync, 'the pool path never answers inside read()');
    });
  }
  const s = inline.nowaitStats;
  assert.ok(s.hits > 20 && s.enabled, JSON.stringify(s));
  assert.equal(pool.nowaitStats, { hits: 0, partial: 0, misses: 0, skipped: 0, enabled: false }, 'nowait: false never tries');
  inline.close();
  pool.close();
});

onDisk('readv (persistent grants): a cached request is one inline preadv2; a partly cached one goes on', async () => {
  const { file, data } = cachedFile('readv.img');
  for (const uring of [false, true]) {
    // Out of the cache again (the previous round's read brought it in).
    const fresh = new Uint8Array(randomBytes(1 << 20));
    evict(file, 4 << 20, fresh);
    data.set(fresh, 4 << 20);
    const img = Image.open(file, { readOnly: true, uring });
    type Got = { err: unknown; views: Uint8Array[]; sync: boolean };
    const readv = (at: number, sizes: number[]) => new Promise<Got>((res) => {
      const views = sizes.map((n) => new Uint8Array(n));
      let returned = false;
      img.cork?.(); // with a ring, the first read of a pump tries inline
      img.readv(views, at, (err) => res({ err, views, sync: !returned }));
      returned = true;
      img.uncork?.();
    });
    const join = (views: Uint8Array[]) => Buffer.concat(views);
    // Cached: one preadv2 fills all the views, answered inside readv().
    let r = await readv(8192, [4096, 512, 3584, 4096]);
    assert.is(r.err, null);
    assert.ok(r.sync, `${uring}: a cached request is answered inside readv()`);
    assert.ok(join(r.views).equals(data.subarray(8192, 8192 + 12288)));
    assert.is(img.nowaitStats.hits, 1);
    // The first 8 KiB cached, the rest not: the ring or the pool reads on from there.
    r = await readv((4 << 20) - 8192, [4096, 4096, 4096, 4096]);
    assert.is(r.err, null);
    assert.ok(join(r.views).equals(data.subarray((4 << 20) - 8192, (4 << 20) + 8192)), `${uring}: partly cached`);
    const st = img.nowaitStats;
    assert.is(st.partial + st.misses, 1, 'tried inline once (the kernel may give the cached start or nothing)');
    img.close();
  }
});

onDisk('a read of pages never cached falls back to the pool (EAGAIN) and completes through the engine', async () => {
  const file = path.join(dir, 'cold.img');
  fs.writeFileSync(file, '');
  fs.truncateSync(file, SIZE);
  const pages = Array.from({ length: 11 }, () => new Uint8Array(randomBytes(4096)));
  const at = 5 << 20;
  const all = new Uint8Array(11 * 4096);
  pages.forEach((p, i) => all.set(p, i * 4096));
  evict(file, at, all); // written past the cache: nothing of it is cached
  const img = Image.open(file, { readOnly: false, uring: false });
  const rig = new Rig(img, { limits: { ...LIMITS, sectors: BigInt(SIZE / 512) } });
  const gs = pages.map(() => rig.grants.grant());
  rig.submit(rwReq(BlkifOp.READ, 1n, BigInt(at / 512), gs));
  const rs = await rig.collect(1);
  assert.is(rs[0]!.status, 0);
  gs.forEach((g, i) => assert.equal(rig.grants.page(g), pages[i]!, `segment ${i}`));
  assert.equal(img.nowaitStats, { hits: 0, partial: 0, misses: 1, skipped: 0, enabled: true });
  // Now cached; the next read is not tried (just after a miss), the one after is a hit.
  for (const id of [2n, 3n]) {
    gs.forEach((g) => rig.grants.page(g).fill(0));
    rig.submit(rwReq(BlkifOp.READ, id, BigInt(at / 512), gs));
    assert.is((await rig.collect(Number(id)))[Number(id) - 1]!.status, 0);
    gs.forEach((g, i) => assert.equal(rig.grants.page(g), pages[i]!, `request ${id} segment ${i}`));
  }
  assert.equal(img.nowaitStats, { hits: 1, partial: 0, misses: 1, skipped: 1, enabled: true });
  rig.engine.close();
  img.close();
});

onDisk('a short read at EOF is still EIO, cached or not, and nothing is read past the end', async () => {
  const { file } = cachedFile('eof.img');
  const reads = [[SIZE - (64 << 10), 256 << 10], [SIZE - 2048, 4096], [SIZE, 4096], [SIZE - 512, 512]] as const;
  // Cached: the inline read is short (up to EOF), then the pool meets EOF. Then the tail
  // evicted: the inline read misses, and the pool reads up to EOF and meets it.
  for (const cached of [true, false]) {
    if (!cached) evict(file, SIZE - (2 << 20), new Uint8Array(2 << 20));
    for (const nowait of [true, false]) {
      const sum = { hits: 0, partial: 0, misses: 0, skipped: 0 };
      for (const [at, len] of reads) {
        // A fresh image per read: none is skipped after an earlier one's miss.
        const img = Image.open(file, { readOnly: true, nowait, uring: false });
        const r = await read(img, at, len);
        if (at + len <= SIZE) assert.is(r.err, null, `${at}+${len} inside the file`);
        else {
          assert.ok(r.err, `cached ${cached}, nowait ${nowait}: ${at}+${len} crosses EOF`);
          assert.is(r.err!.code, 'EIO');
          assert.match(r.err!.message, /short read/);
        }
        const s = img.nowaitStats;
        for (const k of ['hits', 'partial', 'misses', 'skipped'] as const) sum[k] += s[k];
        img.close();
      }
      // Cached: two short inline reads, one whole, and the read at EOF itself gets 0 (a miss).
      if (nowait && cached) assert.equal(sum, { hits: 1, partial: 2, misses: 1, skipped: 0 });
      if (nowait && !cached) assert.ok(sum.misses >= 1, JSON.stringify(sum));
    }
  }
});

onDisk('writes and O_DIRECT reads never take the inline path', async () => {
  const { file, data } = cachedFile('direct.img');
  const img = Image.open(file, { readOnly: false, direct: true, uring: false });
  const buf = new Uint8Array(native().allocAligned(8192, 4096));
  await new Promise<void>((resolve, reject) => img.read(buf, 4096, (e) => (e ? reject(e) : resolve())));
  assert.equal(buf, data.subarray(4096, 4096 + 8192));
  assert.equal(img.nowaitStats, { hits: 0, partial: 0, misses: 0, skipped: 0, enabled: false });
  img.close();
  const rw = Image.open(file, { readOnly: false, uring: false });
  await new Promise<void>((resolve, reject) => rw.write(buf, 0, (e) => (e ? reject(e) : resolve())));
  assert.equal(rw.nowaitStats, { hits: 0, partial: 0, misses: 0, skipped: 0, enabled: true }, 'a write is not a NOWAIT attempt');
  rw.close();
});

onDisk('on a file not in the cache, NOWAIT is tried less and less, and again once reads hit', async () => {
  const file = path.join(dir, 'cold2.img');
  const data = new Uint8Array(randomBytes(SIZE));
  fs.writeFileSync(file, '');
  fs.truncateSync(file, SIZE);
  evict(file, 0, data);
  const img = Image.open(file, { readOnly: true, uring: false });
  let seed = 99;
  const page = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % (SIZE / 4096);
  const seen = new Set<number>();
  for (let i = 0; i < 600; i++) {
    let p = page();
    while (seen.has(p)) p = (p + 1) % (SIZE / 4096); // every read a page not read before: cold
    seen.add(p);
    const r = await read(img, p * 4096, 4096);
    assert.equal(r.bytes, data.subarray(p * 4096, (p + 1) * 4096));
  }
  // Readahead caches some neighbours (hits, which reset the back-off); most reads are not tried.
  const s = img.nowaitStats;
  assert.is(s.hits + s.misses + s.skipped, 600);
  assert.ok(s.hits + s.misses < 200 && s.skipped > 400, `tries back off: ${JSON.stringify(s)}`);
  // Cached now: every try is a hit, and each hit halves the skip after a miss.
  const back = [...seen].slice(0, 200);
  for (const p of back) assert.equal((await read(img, p * 4096, 4096)).bytes, data.subarray(p * 4096, (p + 1) * 4096));
  const t = img.nowaitStats;
  assert.ok(t.hits - s.hits >= 200 - 129, `hits again: ${JSON.stringify(t)}`);
  assert.is(t.misses, s.misses, 'no miss on cached pages');
  img.close();
});

// tmpfs has no RWF_NOWAIT on this kernel (measured: EOPNOTSUPP), like OpenAFS very likely.
const shm = fs.existsSync('/dev/shm') ? fs.mkdtempSync('/dev/shm/afsfile-nowait-') : undefined;
const shmRefuses = shm !== undefined && !nowaitWorks(shm);
if (!shmRefuses) console.log('  /dev/shm serves RWF_NOWAIT reads here (or is missing): the refusal test is skipped');

(shmRefuses ? test : test.skip)('a file system that refuses NOWAIT (tmpfs) is asked once, then the pool serves every read', async () => {
  const file = path.join(shm!, 'shm.img');
  const data = new Uint8Array(randomBytes(1 << 20));
  fs.writeFileSync(file, data);
  const fd = fs.openSync(file, 'r');
  assert.is(native().preadv2(fd, new Uint8Array(4096), 0, native().RWF_NOWAIT), -EOPNOTSUPP, 'tmpfs answers EOPNOTSUPP');
  fs.closeSync(fd);
  const img = Image.open(file, { readOnly: true, uring: false });
  for (let i = 0; i < 5; i++) {
    const r = await read(img, i * 65536, 65536);
    assert.is(r.err, null);
    assert.equal(r.bytes, data.subarray(i * 65536, (i + 1) * 65536));
  }
  assert.equal(img.nowaitStats, { hits: 0, partial: 0, misses: 1, skipped: 0, enabled: false }, 'asked once');
  img.close();
});

test.after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  if (shm) fs.rmSync(shm, { recursive: true, force: true });
});
test.run();
