// LinuxGrantTable without /dev/xen. A regular file stands in for /dev/xen/gntdev so the real
// mmapShared/munmapShared run; the gntdev ioctls are answered as drivers/xen/gntdev.c answers
// them, recording the order. Then the real failure paths (/dev/null: ENOTTY; missing: ENOENT).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native } from '../../src/native/addon';
import type { NativeAddon } from '../../src/native/types';
import { GNTST, GrantCopyBatch } from '../../src/xen/grant-table';
import { EAGAIN_RETRIES, LinuxGrantTable, openGrantTable } from '../../src/xen/linux/grant-table';
import { IOCTL } from '../../src/xen/linux/uapi';
import { tempDir } from '../helpers/exe';
import { withTempDir } from '../helpers/temp';

const real = native();
const name = (req: number) => Object.entries(IOCTL).find(([, v]) => v === req)?.[0] ?? req.toString(16);

interface Kernel {
  log: string[];
  /** Status the fake kernel writes for each segment of a GRANT_COPY, by call number. */
  copyStatus: (call: number, slot: number, ref: number) => number;
  copies: { count: number; refs: number[]; virts: bigint[] }[];
  mappedAt?: bigint;
  /** mmapShared fails with this errno. */
  mmapErrno?: number;
}

function rig(): { gt: LinuxGrantTable; k: Kernel; file: string; done(): void } {
  const t = tempDir();
  const file = path.join(t.dir, 'gntdev');
  fs.writeFileSync(file, Buffer.alloc(4096 * 8));
  const k: Kernel = { log: [], copies: [], copyStatus: () => GNTST.okay };
  // The table's encoder owns the segment array; the fake kernel reads it through the table's
  // own pinned memory: found by address among buffers the addon handed out.
  const pinned = new Map<bigint, ArrayBuffer>();
  let mapped: ArrayBuffer | undefined;
  const addon: NativeAddon = {
    ...real,
    allocAligned(len, align) {
      const ab = real.allocAligned(len, align);
      pinned.set(real.addressOf(ab), ab);
      return ab;
    },
    mmapShared(fd, len, off, w) {
      if (k.mmapErrno !== undefined) {
        k.log.push('mmap failed');
        throw Object.assign(new Error('mmap: failed'), { errno: k.mmapErrno });
      }
      mapped = real.mmapShared(fd, len, off, w);
      k.log.push(`mmap ${len}@${off}${w ? ' rw' : ''}`);
      return mapped;
    },
    munmapShared(ab) {
      k.log.push('munmap');
      real.munmapShared(ab);
    },
    ioctl(_fd, request, arg) {
      const v = arg && new DataView(arg.buffer, arg.byteOffset, arg.byteLength);
      k.log.push(name(request));
      switch (request) {
        case IOCTL.GNTDEV_GRANT_COPY: {
          const count = v!.getUint32(0, true);
          const addr = v!.getBigUint64(8, true);
          if (count === 0) return 0;
          const segs = pinned.get(addr);
          if (!segs) throw Object.assign(new Error('ioctl: Bad address'), { errno: 14 });
          const sv = new DataView(segs);
          const call = k.copies.length;
          const refs: number[] = [];
          const virts: bigint[] = [];
          for (let s = 0; s < count; s++) {
            const flags = sv.getUint16(s * 24 + 18, true);
            const ref = sv.getUint32(s * 24 + (flags === 1 ? 0 : 8), true);
            refs.push(ref);
            virts.push(sv.getBigUint64(s * 24 + (flags === 1 ? 8 : 0), true));
            sv.setInt16(s * 24 + 20, k.copyStatus(call, s, ref), true);
          }
          k.copies.push({ count, refs, virts });
          return 0;
        }
        case IOCTL.GNTDEV_MAP_GRANT_REF:
          assert.is(v!.getUint32(0, true), (arg!.length - 16) / 8, 'count matches the refs passed');
          k.mappedAt = 4096n;
          v!.setBigUint64(8, k.mappedAt, true);
          return 0;
        case IOCTL.GNTDEV_GET_OFFSET_FOR_VADDR:
          assert.ok(mapped && mapped.byteLength > 0, 'asked while still mapped');
          assert.is(v!.getBigUint64(0, true), real.addressOf(mapped!), 'vaddr = the mapping');
          v!.setBigUint64(8, k.mappedAt!, true);
          v!.setUint32(16, mapped!.byteLength / 4096, true);
          return 0;
        case IOCTL.GNTDEV_UNMAP_GRANT_REF:
          assert.ok(mapped === undefined || mapped.byteLength === 0, 'UNMAP_GRANT_REF only after munmap (or none)');
          k.log.push(`  index ${v!.getBigUint64(0, true)} count ${v!.getUint32(8, true)}`);
          return 0;
        default:
          throw Object.assign(new Error('ioctl: Inappropriate ioctl for device'), { errno: 25 });
      }
    },
  };
  const gt = new LinuxGrantTable(fs.openSync(file, 'r+'), '/dev/xen/gntdev', addon);
  return { gt, k, file, done: () => { gt.close(); t.cleanup(); } };
}

test('open probes grant copy with a zero-segment GRANT_COPY', () => {
  const r = rig();
  try {
    assert.equal(r.k.log, ['GNTDEV_GRANT_COPY']);
  } finally {
    r.done();
  }
});

test('mapRing: MAP_GRANT_REF then mmap of 4096*count at the index; unmap: GET_OFFSET_FOR_VADDR, munmap, UNMAP_GRANT_REF', async () => {
  const r = rig();
  try {
    const m = await r.gt.mapRing(5, [8, 9]);
    assert.is(m.buffer.byteLength, 8192);
    new Uint32Array(m.buffer)[1024] = 0xdeadbeef; // second page
    assert.is(
      fs.readFileSync(r.file).readUInt32LE(4096 + 4096),
      0xdeadbeef,
      'the mapping is the device memory at the index',
    );
    m.unmap();
    m.unmap();
    assert.equal(r.k.log.slice(1), [
      'GNTDEV_MAP_GRANT_REF', 'mmap 8192@4096 rw',
      'GNTDEV_GET_OFFSET_FOR_VADDR', 'munmap', 'GNTDEV_UNMAP_GRANT_REF', '  index 4096 count 2',
    ]);
    assert.is(m.buffer.byteLength, 0, 'detached: no access after unmap');
    await r.gt.mapRing(1, []).then(() => assert.unreachable(), (e: Error) => assert.instance(e, RangeError));
    await r.gt.mapRing(1, [-1]).then(() => assert.unreachable(), (e: Error) => assert.instance(e, RangeError));
  } finally {
    r.done();
  }
});

test('mapGrant: one ref, mmap of one page writable; unmap: munmap then UNMAP_GRANT_REF of that index', () => {
  const r = rig();
  try {
    const p = r.gt.mapGrant(5, 77)!;
    assert.ok(p);
    assert.is(p.bytes.length, 4096);
    p.bytes[10] = 0xab;
    assert.is(fs.readFileSync(r.file)[4096 + 10], 0xab, 'the page is the device memory at the index');
    assert.is(r.gt.stats.grantsMapped, 1);
    p.unmap();
    p.unmap();
    assert.equal(r.k.log.slice(1), [
      'GNTDEV_MAP_GRANT_REF', 'mmap 4096@4096 rw', 'munmap', 'GNTDEV_UNMAP_GRANT_REF', '  index 4096 count 1',
    ]);
    assert.is(r.gt.stats.grantsMapped, 0);
    assert.is(r.gt.mapGrant(5, -1), null);
    assert.is(r.gt.mapGrant(70000, 1), null);
  } finally {
    r.done();
  }
});

test('mapGrant: a failed mmap gives the index back and returns null (the caller copies)', () => {
  const r = rig();
  try {
    r.k.mmapErrno = 11; // EAGAIN: a paged-out page; no retry on the data path
    assert.is(r.gt.mapGrant(5, 77), null);
    assert.equal(r.k.log.slice(1), ['GNTDEV_MAP_GRANT_REF', 'mmap failed', 'GNTDEV_UNMAP_GRANT_REF', '  index 4096 count 1']);
    assert.is(r.gt.stats.grantMapFailures, 1);
    assert.is(r.gt.stats.grantsMapped, 0);
  } finally {
    r.done();
  }
});

test('close unmaps what is still mapped; afterwards copy and mapRing fail with EBADF', async () => {
  const r = rig();
  const pool = r.gt.allocPool(4096);
  await r.gt.mapRing(5, [8]);
  r.done();
  r.done();
  assert.equal(r.k.log.slice(-3), ['munmap', 'GNTDEV_UNMAP_GRANT_REF', '  index 4096 count 1']);
  const b = new GrantCopyBatch(1);
  b.add(true, 5, 1, 0, 16, 0);
  assert.throws(
    () => r.gt.copy(b, pool),
    (e: NodeJS.ErrnoException) => e.code === 'EBADF' && /grant table closed/.test(e.message),
  );
  const err = await r.gt.mapRing(5, [8]).then(
    () => undefined,
    (e: NodeJS.ErrnoException) => e,
  );
  assert.is(err?.code, 'EBADF');
});

test('copy: all segments in ONE ioctl, per-segment status back, a bad gref fails only its segment', () => {
  const r = rig();
  try {
    const pool = r.gt.allocPool(64 * 1024);
    const b = new GrantCopyBatch(32);
    for (let i = 0; i < 16; i++) b.add(i % 2 === 1, 4, 200 + i, 0, 4096, i * 4096);
    r.k.copyStatus = (_c, _s, ref) => (ref === 205 ? GNTST.bad_gntref : GNTST.okay);
    r.gt.copy(b, pool);
    assert.is(r.k.copies.length, 1);
    assert.is(r.k.copies[0].count, 16);
    assert.equal(r.k.copies[0].refs, Array.from({ length: 16 }, (_, i) => 200 + i));
    assert.equal([...b.status.subarray(0, 16)], Array.from({ length: 16 }, (_, i) => (i === 5 ? GNTST.bad_gntref : GNTST.okay)));
    assert.equal(r.gt.stats, {
      copyIoctls: 1, segments: 16, refusedSegments: 0, failedSegments: 1, eagainRetries: 0, ringsMapped: 0,
      grantsMapped: 0, grantMapFailures: 0,
    });
  } finally {
    r.done();
  }
});

test('copy: GNTST_eagain segments are retried alone, a bounded number of times', () => {
  const r = rig();
  try {
    const pool = r.gt.allocPool(8192);
    const b = new GrantCopyBatch(4);
    b.add(false, 4, 1, 0, 512, 0);
    b.add(false, 4, 2, 0, 512, 512);
    b.add(false, 4, 3, 0, 512, 1024);
    // ref 2 pages in on the second retry; ref 3 never does.
    r.k.copyStatus = (call, _s, ref) => (ref === 2 && call < 2) || ref === 3 ? GNTST.eagain : GNTST.okay;
    r.gt.copy(b, pool);
    assert.equal(r.k.copies.map((c) => c.refs), [[1, 2, 3], [2, 3], [2, 3], [3]]);
    assert.is(r.k.copies.length, 1 + EAGAIN_RETRIES);
    assert.equal([...b.status.subarray(0, 3)], [GNTST.okay, GNTST.okay, GNTST.eagain]);
    assert.is(r.gt.stats.eagainRetries, EAGAIN_RETRIES);
    assert.is(r.gt.stats.failedSegments, 1);
  } finally {
    r.done();
  }
});

test('copy: segment virt addresses point into the pool at its offsets; foreign pools are refused', () => {
  const r = rig();
  try {
    const pool = r.gt.allocPool(4096 * 4);
    const poolAddr = real.addressOf(pool.buffer as ArrayBuffer);
    assert.is(poolAddr % 4096n, 0n, 'pool page aligned');
    const sub = pool.subarray(4096); // a view: addresses follow its byteOffset
    const b = new GrantCopyBatch(2);
    b.add(true, 1, 77, 0, 100, 8);
    b.add(false, 1, 78, 0, 100, 3 * 4096 - 100); // the last bytes of the view
    r.gt.copy(b, sub);
    assert.equal(r.k.copies[0].virts, [poolAddr + 4096n + 8n, poolAddr + 4096n + 3n * 4096n - 100n]);
    b.reset();
    b.add(false, 1, 79, 0, 101, 3 * 4096 - 100); // one byte past the view: never sent
    r.gt.copy(b, sub);
    assert.is(r.k.copies.length, 1, 'nothing valid, no ioctl');
    assert.is(b.status[0], GNTST.bad_copy_arg);
    assert.throws(() => r.gt.copy(b, new Uint8Array(4096)), /not allocated by allocPool/);
  } finally {
    r.done();
  }
});

test('real failures: /dev/null has no grant copy (ENOTTY, says Linux 4.8); a missing gntdev is ENOENT with the hint', () => {
  assert.throws(
    () => openGrantTable('/dev/null'),
    (e: NodeJS.ErrnoException) =>
      e.code === 'ENOTTY' &&
      /^IOCTL_GNTDEV_GRANT_COPY probe on \/dev\/null: .*\(ENOTTY\); .*no grant copy.*Linux 4\.8/.test(e.message),
  );
  withTempDir((tmp) => {
    const p = path.join(tmp, 'gntdev');
    assert.throws(
      () => openGrantTable(p),
      (e: NodeJS.ErrnoException) =>
        e.code === 'ENOENT' && e.message.startsWith(`${p} missing: load xen-evtchn and xen-gntdev`),
    );
  });
});

test('real ioctl failure inside copy and mapRing: the operation and ENOTTY', async () => {
  // A table over /dev/null whose probe is skipped by answering it, then real ioctls.
  let probe = true;
  const addon: NativeAddon = {
    ...real,
    ioctl: (fd, req, arg) => (probe ? ((probe = false), 0) : real.ioctl(fd, req, arg)),
  };
  const gt = new LinuxGrantTable(fs.openSync('/dev/null', 'r+'), '/dev/null', addon);
  try {
    const pool = gt.allocPool(4096);
    const b = new GrantCopyBatch(1);
    b.add(false, 1, 1, 0, 512, 0);
    assert.throws(() => gt.copy(b, pool), (e: NodeJS.ErrnoException) => e.code === 'ENOTTY' && /IOCTL_GNTDEV_GRANT_COPY\(1 segments\) on \/dev\/null/.test(e.message));
    const err = await gt.mapRing(3, [5]).then(() => undefined, (e: NodeJS.ErrnoException) => e);
    assert.is(err?.code, 'ENOTTY');
    assert.match(err!.message, /IOCTL_GNTDEV_MAP_GRANT_REF\(domain 3 grefs 5\)/);
  } finally {
    gt.close();
  }
});

test.run();
