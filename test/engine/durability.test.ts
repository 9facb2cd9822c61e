// Nothing acknowledged is lost when an fsync fails and the file system dropped the writes
// (LossyFile: the OpenAFS/kAFS write-back), and the kept data stays bounded.
import * as fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlkifOp } from '../../src/blkif/constants';
import { Image } from '../../src/image/image';
import { MemFile, Rig, pattern, rwReq, tick } from './fixture';
import { LossyFile } from './lossy-file';
import { PoolBudget } from '../../src/engine/pool-budget';
import { Durability } from '../../src/engine/durability';
import { emptyStats } from '../../src/engine/stats';

const { READ, WRITE, FLUSH_DISKCACHE } = BlkifOp;
const dir = LossyFile.tempDir();
const SIZE = 1 << 20;

/** Writes pattern(seed) at page `page`, waits for its answer. */
async function write(rig: Rig, page: number, seed: number): Promise<number> {
  const id = rig.id();
  rig.submit(rwReq(WRITE, id, BigInt(page * 8), [rig.grants.grant(pattern(seed))]));
  const rs = await rig.collect(rig.responses.length + 1, 5000);
  return rs[rs.length - 1].status;
}

async function flush(rig: Rig, timeoutMs = 5000): Promise<number> {
  rig.submit(rwReq(FLUSH_DISKCACHE, rig.id(), 0n, []));
  const rs = await rig.collect(rig.responses.length + 1, timeoutMs);
  return rs[rs.length - 1].status;
}

function storedPage(file: LossyFile, page: number): Uint8Array {
  return new Uint8Array(file.stored.subarray(page * 4096, page * 4096 + 4096));
}

for (const code of ['EACCES', 'EDQUOT', 'EIO']) {
  test(`fsync fails with ${code} and drops the writes: FLUSH answers OK only once they are stored`, async () => {
    const file = new LossyFile(dir, SIZE);
    const rig = new Rig(file, { engine: { holdTimeoutMs: 5000 } });
    assert.is(await write(rig, 0, 1), 0);
    assert.is(await flush(rig), 0);
    assert.equal(storedPage(file, 0), pattern(1));
    assert.is(await write(rig, 0, 2), 0, 'overwrite');
    assert.is(await write(rig, 5, 3), 0);
    file.failFsync.push(code);
    assert.is(await flush(rig), 0, 'FLUSH succeeds after the recovery');
    assert.equal(storedPage(file, 0), pattern(2), 'overwrite stored, not the older data');
    assert.equal(storedPage(file, 5), pattern(3), 'second write stored');
    assert.ok(file.reopens >= 1, 'image reopened before writing again');
    const st = rig.engine.stats();
    assert.is(st.recoveries, 1);
    assert.is(st.keptBytes, 0, 'kept data released after the good fsync');
    assert.not.ok(rig.engine.dirty);
    rig.engine.close();
    file.close();
  });
}

test('a failed periodic fsync dropped the writes: the next FLUSH still stores them', async () => {
  const file = new LossyFile(dir, SIZE);
  const warnings: string[] = [];
  const rig = new Rig(file, { engine: { fsyncIntervalMs: 30, holdTimeoutMs: 5000, warn: (m) => warnings.push(m) } });
  file.failFsync.push('EACCES');
  assert.is(await write(rig, 3, 7), 0);
  // The periodic fsync fails (and drops), the recovery stores it again on its own.
  for (let i = 0; i < 100 && rig.engine.stats().recoveries === 0; i++) await tick(10);
  assert.equal(storedPage(file, 3), pattern(7));
  assert.is(await flush(rig), 0);
  assert.equal(storedPage(file, 3), pattern(7));
  assert.ok(warnings.some((w) => /may have dropped 1 write/.test(w)), warnings.join('\n'));
  rig.engine.close();
  file.close();
});

test('reads wait for the recovery: never the dropped (older) data', async () => {
  const file = new LossyFile(dir, SIZE);
  const rig = new Rig(file, { engine: { holdTimeoutMs: 5000 } });
  assert.is(await write(rig, 2, 1), 0);
  assert.is(await flush(rig), 0);
  assert.is(await write(rig, 2, 9), 0);
  file.failFsync.push('EACCES', 'EACCES');
  const g = rig.grants.grant();
  rig.submit(rwReq(FLUSH_DISKCACHE, rig.id(), 0n, []));
  // Let the first fsync fail (the cache now holds the older data again), then read.
  for (let i = 0; i < 200 && file.failFsync.length > 1; i++) await tick(1);
  rig.submit(rwReq(READ, rig.id(), 16n, [g]));
  const rs = await rig.collect(rig.responses.length + 2, 5000);
  assert.equal(rs.slice(-2).map((r) => r.status), [0, 0]);
  assert.equal(rig.grants.page(g), pattern(9), 'the read saw what the guest wrote last');
  assert.equal(storedPage(file, 2), pattern(9));
  rig.engine.close();
  file.close();
});

test('a read in flight while an fsync fails and drops the writes: answered with the kept data', async () => {
  const file = new LossyFile(dir, SIZE);
  const rig = new Rig(file, { engine: { holdTimeoutMs: 5000, fsyncIntervalMs: 0 } });
  assert.is(await write(rig, 2, 1), 0);
  assert.is(await flush(rig), 0);
  assert.is(await write(rig, 2, 9), 0);
  assert.is(await write(rig, 3, 4), 0);
  // The read has started but not yet read the file when the fsync drops the writes (the
  // client's cache now holds the older data again); it reads the file after the drop.
  file.pausedReads = [];
  const g = rig.grants.grant();
  const g3 = rig.grants.grant();
  rig.submit(rwReq(READ, rig.id(), 16n, [g, g3]));
  for (let i = 0; i < 200 && file.pausedReads.length === 0; i++) await tick(1);
  assert.is(file.pausedReads.length, 1, 'the read is in flight');
  file.failFsync.push('EACCES');
  const flushed = rig.engine.flush();
  for (let i = 0; i < 200 && file.failFsync.length > 0; i++) await tick(1);
  assert.equal(file.current().subarray(2 * 4096, 3 * 4096), Buffer.from(pattern(1)), 'the file dropped the write');
  file.releaseReads();
  const rs = await rig.collect(rig.responses.length + 1, 5000);
  assert.is(rs[rs.length - 1].status, 0);
  assert.equal(rig.grants.page(g), pattern(9), 'the read saw what the guest wrote last, not the dropped data');
  assert.equal(rig.grants.page(g3), pattern(4));
  await flushed;
  assert.equal(storedPage(file, 2), pattern(9));
  assert.equal(storedPage(file, 3), pattern(4));
  rig.engine.close();
  file.close();
});

test('overlay: the kept writes and holes over a read, newest last, across a 1 MiB chunk edge', () => {
  const noFile = new MemFile(4 << 20);
  const hooks = { warn: () => {}, quiet: (cb: () => void) => cb(), resume: () => {} };
  const dur = new Durability(noFile, emptyStats(), 1000, hooks, { fsyncIntervalMs: 0 });
  const MiB = 1 << 20;
  dur.wrote(MiB - 4096, new Uint8Array(8192).fill(1));
  dur.wrote(MiB, new Uint8Array(4096).fill(2));
  dur.discarded(MiB - 512, 512);
  dur.wrote(3 * MiB, new Uint8Array(512).fill(3));
  const buf = new Uint8Array(16384).fill(7);
  dur.overlay(MiB - 8192, buf);
  const want = new Uint8Array(16384).fill(7);
  want.fill(1, 4096, 8192 - 512);
  want.fill(0, 8192 - 512, 8192);
  want.fill(2, 8192, 12288);
  assert.equal(buf, want);
  const far = new Uint8Array(4096).fill(7);
  dur.overlay(2 * MiB, far);
  assert.equal(far, new Uint8Array(4096).fill(7), 'nothing kept there');
  dur.close();
});

test('recovery failing past hold-timeout: FLUSH fails, the data stays kept, a later FLUSH stores it', async () => {
  const file = new LossyFile(dir, SIZE);
  const rig = new Rig(file, { engine: { holdTimeoutMs: 300 } });
  assert.is(await write(rig, 1, 4), 0);
  for (let i = 0; i < 1000; i++) file.failFsync.push('ETIMEDOUT');
  const t0 = Date.now();
  assert.is(await flush(rig), -1, 'the guest hears of it after hold-timeout');
  assert.ok(Date.now() - t0 >= 250, 'held until hold-timeout');
  assert.ok(rig.engine.stats().keptBytes >= 4096, 'still kept');
  file.failFsync.length = 0;
  assert.is(await flush(rig), 0);
  assert.equal(storedPage(file, 1), pattern(4));
  rig.engine.close();
  file.close();
});

test('kept data is bounded: when full, the next write waits for an fsync', async () => {
  const file = new MemFile(SIZE);
  const rig = new Rig(file, { engine: { keepBytes: 8192 } });
  for (let i = 0; i < 3; i++) assert.is(await write(rig, i, i), 0);
  assert.equal(file.log, ['write@0', 'write@4096', 'fsync', 'write@8192']);
  assert.ok(rig.engine.stats().keptBytes <= 8192);
  rig.engine.close();
  // Several at once: never more kept than the bound plus what may be in flight (2 here).
  const file2 = new MemFile(SIZE);
  const rig2 = new Rig(file2, { engine: { keepBytes: 8192, maxRequests: 2 } });
  for (let i = 0; i < 8; i++) rig2.submit(rwReq(WRITE, rig2.id(), BigInt(64 + i * 8), [rig2.grants.grant(pattern(i))]));
  let peak = 0;
  for (let i = 0; i < 500 && rig2.responses.length < 8; i++) {
    peak = Math.max(peak, rig2.engine.stats().keptBytes);
    await rig2.collect(0);
    await tick();
  }
  assert.is(rig2.responses.length, 8);
  assert.ok(rig2.responses.every((r) => r.status === 0));
  assert.ok(peak <= 8192 + 2 * 4096, `peak kept ${peak}`);
  assert.ok(file2.log.filter((l) => l === 'fsync').length >= 2, file2.log.join(' '));
  for (let i = 0; i < 8; i++) assert.equal(file2.data.subarray((64 + i * 8) * 512, (64 + i * 8) * 512 + 4096), pattern(i));
});

test('devices sharing a process budget of kept data: over it, a device fsyncs before its next write', async () => {
  const keepBudget = new PoolBudget(8192);
  const a = new MemFile(SIZE);
  const b = new MemFile(SIZE);
  const ra = new Rig(a, { engine: { keepBudget } });
  const rb = new Rig(b, { engine: { keepBudget } });
  // Each device alone may keep 32 MiB; together they may keep 8 KiB (plus one write each).
  assert.is(await write(ra, 0, 1), 0);
  assert.is(await write(rb, 0, 2), 0);
  assert.is(keepBudget.bytesInUse, 8192);
  assert.is(await write(ra, 1, 3), 0);
  assert.equal(a.log, ['write@0', 'fsync', 'write@4096'], 'device a made room for its write');
  assert.is(await write(rb, 1, 4), 0);
  assert.equal(b.log, ['write@0', 'fsync', 'write@4096']);
  assert.is(keepBudget.bytesInUse, 8192);
  ra.engine.close();
  assert.is(keepBudget.bytesInUse, 4096, 'a closed device gives back what it kept');
  rb.engine.close();
  assert.is(keepBudget.bytesInUse, 0);
});

test('the same range written again: the arena span it leaves counts against the process budget', async () => {
  const keepBudget = new PoolBudget(64 << 10);
  const file = new MemFile(SIZE);
  const rig = new Rig(file, { engine: { keepBudget } });
  // Two pages kept (each write to page 0 replaces its last copy), but each copy takes the arena's
  // next 4 KiB: the one of page 1, written first and kept, holds the ring's head.
  assert.is(await write(rig, 1, 99), 0);
  for (let i = 0; i < 40; i++) assert.is(await write(rig, 0, i), 0);
  const fsyncs = file.log.filter((l) => l === 'fsync').length;
  assert.ok(fsyncs >= 1, `an fsync to make room, though 8 KiB are kept: ${fsyncs} (${file.log.join(' ')})`);
  assert.ok(keepBudget.bytesInUse <= 64 << 10, `charged ${keepBudget.bytesInUse}`);
  assert.equal(file.data.subarray(0, 4096), pattern(39));
  rig.engine.close();
  assert.is(keepBudget.bytesInUse, 0);
});

test('the same range written again is kept once; another length at the same offset apart', async () => {
  const file = new MemFile(SIZE);
  const rig = new Rig(file, { engine: { fsyncIntervalMs: 0 } });
  assert.is(await write(rig, 3, 1), 0);
  assert.is(await write(rig, 3, 2), 0);
  assert.is(rig.engine.stats().keptBytes, 4096, 'the second copy replaced the first');
  const id = rig.id();
  rig.submit(rwReq(WRITE, id, 3n * 8n, [rig.grants.grant(pattern(4)), rig.grants.grant(pattern(5))]));
  const rs = await rig.collect(rig.responses.length + 1, 5000);
  assert.is(rs[rs.length - 1].status, 0);
  assert.is(rig.engine.stats().keptBytes, 4096 + 8192, '8 KiB at the same offset is another range');
  assert.is(await write(rig, 4, 6), 0);
  assert.is(rig.engine.stats().keptBytes, 4096 + 8192 + 4096);
  assert.is(await flush(rig), 0);
  assert.is(rig.engine.stats().keptBytes, 0);
  rig.engine.close();
});

test('keepBytes 0 (O_DIRECT images): no copy kept, EIO from fsync reaches the guest', async () => {
  const file = new MemFile(SIZE);
  const rig = new Rig(file, { engine: { keepBytes: 0, holdTimeoutMs: 5000 } });
  assert.is(await write(rig, 0, 1), 0);
  assert.is(rig.engine.stats().keptBytes, 0);
  file.failNext('fsync', 'EIO');
  assert.is(await flush(rig), -1);
  rig.engine.close();
});

test('Image.reopen: the same file through a new fd, the old one closed', () => new Promise<void>((resolve, reject) => {
  const p = `${dir}/reopen.img`;
  fs.writeFileSync(p, Buffer.alloc(SIZE));
  // As on AFS (a local file keeps its open file: test/image/reopen-nocap.test.ts).
  const img = Image.open(p, { readOnly: false, reopen: true });
  const before = img.fd;
  img.write(pattern(5), 4096, (err) => {
    if (err) return reject(err);
    img.reopen((e2) => {
      try {
        assert.is(e2, null);
        assert.is.not(img.fd, before);
        const buf = new Uint8Array(4096);
        img.read(buf, 4096, (e3) => {
          try {
            assert.is(e3, null);
            assert.equal(buf, pattern(5));
            // Closed asynchronously (a close may block on a network file system).
            const check = (left: number) => {
              try {
                fs.fstatSync(before);
              } catch (e) {
                assert.match(String(e), /EBADF/);
                img.close();
                return resolve();
              }
              if (left === 0) return reject(new Error('old fd still open'));
              setTimeout(() => check(left - 1), 10);
            };
            check(100);
          } catch (e) {
            reject(e);
          }
        });
      } catch (e) {
        reject(e);
      }
    });
  });
}));

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
test.run();
