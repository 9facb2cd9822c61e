// Grant-copy segment encoding, byte by byte against gntdev.h (0 source, 8 dest, 16 len,
// 18 flags, 20 status), status read-back, the EAGAIN retry, and the segments that must never
// reach the kernel (one bad segment would fail the whole ioctl with EINVAL).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GNTST, GrantCopyBatch } from '../../src/xen/grant-table';
import { GrantCopyEncoder, type PinnedBytes } from '../../src/xen/linux/grant-copy';

/** Plain memory with a made-up address: the encoder only writes numbers. */
const fakeAlloc = (bytes: number): PinnedBytes => ({ bytes: new Uint8Array(bytes), address: 0x7f00_1234_0000 });
const POOL = 0x7f12_3456_7000; // above 2^32: both halves of the u64 matter

function le(n: bigint, width: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < width; i++) out.push(Number((n >> BigInt(8 * i)) & 0xffn));
  return out;
}

test('guest → pool (write request): source = foreign {ref, offset, domid}, dest = virt, GNTCOPY_source_gref', () => {
  const b = new GrantCopyBatch(4);
  b.add(false, 0x0102, 0xaabbccdd, 512, 3584, 8192);
  const enc = new GrantCopyEncoder(fakeAlloc);
  assert.is(enc.encodeAll(b, POOL, 65536), 1);
  const s = [...enc.bytes];
  assert.is(s.length, 24);
  assert.equal(s.slice(0, 4), le(0xaabbccddn, 4), 'source.foreign.ref @0');
  assert.equal(s.slice(4, 6), le(512n, 2), 'source.foreign.offset @4');
  assert.equal(s.slice(6, 8), le(0x0102n, 2), 'source.foreign.domid @6');
  assert.equal(s.slice(8, 16), le(BigInt(POOL + 8192), 8), 'dest.virt @8');
  assert.equal(s.slice(16, 18), le(3584n, 2), 'len @16');
  assert.equal(s.slice(18, 20), [1, 0], 'flags @18 = GNTCOPY_source_gref');
  assert.equal(s.slice(20, 22), [0xff, 0xff], 'status @20 = -1 until the kernel writes it');
  assert.equal(s.slice(22, 24), [0, 0], 'padding');
});

test('pool → guest (read request): source = virt, dest = foreign, GNTCOPY_dest_gref', () => {
  const b = new GrantCopyBatch(4);
  b.add(true, 7, 42, 0, 4096, 4096 * 3 + 100);
  const enc = new GrantCopyEncoder(fakeAlloc);
  enc.encodeAll(b, POOL, 65536);
  const s = [...enc.bytes];
  assert.equal(s.slice(0, 8), le(BigInt(POOL + 4096 * 3 + 100), 8), 'source.virt @0 (any alignment on our side)');
  assert.equal(s.slice(8, 12), le(42n, 4), 'dest.foreign.ref @8');
  assert.equal(s.slice(12, 14), [0, 0], 'dest.foreign.offset @12');
  assert.equal(s.slice(14, 16), [7, 0], 'dest.foreign.domid @14');
  assert.equal(s.slice(16, 18), [0, 0x10], 'len 4096');
  assert.equal(s.slice(18, 20), [2, 0], 'flags = GNTCOPY_dest_gref');
});

test('segments crossing the guest page or leaving the pool are not sent and get GNTST_bad_copy_arg', () => {
  const b = new GrantCopyBatch(8);
  b.add(false, 1, 10, 4000, 512, 0); // crosses the guest page
  b.add(false, 1, 11, 0, 512, 0); // fine
  b.add(true, 1, 12, 0, 512, 65536 - 256); // runs off the pool
  b.add(true, 1, 13, 0, 512, -512); // before the pool
  b.add(true, 1, 14, 0, 512, 1.5); // not an offset
  b.add(true, 1, 15, 3584, 512, 0); // ends exactly at the page end: fine
  const enc = new GrantCopyEncoder(fakeAlloc);
  assert.is(enc.encodeAll(b, POOL, 65536), 2);
  assert.equal([...b.status.subarray(0, 6)], [GNTST.bad_copy_arg, GNTST.general_error, GNTST.bad_copy_arg, GNTST.bad_copy_arg, GNTST.bad_copy_arg, GNTST.general_error]);
  const v = new DataView(enc.bytes.buffer);
  assert.is(v.getUint32(0, true), 11, 'slot 0 = segment 1');
  assert.is(v.getUint32(24 + 8, true), 15, 'slot 1 = segment 5');
});

test('status read-back lands on the right batch index; EAGAIN segments alone are re-encoded', () => {
  const b = new GrantCopyBatch(8);
  for (let i = 0; i < 5; i++) b.add(i % 2 === 0, 3, 100 + i, 0, 512, i * 512);
  b.add(false, 3, 999, 4095, 2, 0); // never sent
  const enc = new GrantCopyEncoder(fakeAlloc);
  assert.is(enc.encodeAll(b, POOL, 65536), 5);
  const v = new DataView(enc.bytes.buffer);
  const kernel = [GNTST.okay, GNTST.eagain, GNTST.bad_gntref, GNTST.eagain, GNTST.okay];
  kernel.forEach((s, k) => v.setInt16(k * 24 + 20, s, true));
  assert.is(enc.readBack(b), 2);
  assert.equal([...b.status.subarray(0, 6)], [...kernel, GNTST.bad_copy_arg]);
  assert.is(enc.encodeRetry(b, POOL), 2);
  assert.is(
    new DataView(enc.bytes.buffer).getUint32(0, true),
    101,
    'retry slot 0 = segment 1 (toGuest=false: ref at source @0)',
  );
  assert.is(new DataView(enc.bytes.buffer).getUint32(24, true), 103, 'retry slot 1 = segment 3');
  const v2 = new DataView(enc.bytes.buffer);
  v2.setInt16(20, GNTST.okay, true);
  v2.setInt16(24 + 20, GNTST.permission_denied, true);
  assert.is(enc.readBack(b), 0);
  assert.equal([...b.status.subarray(0, 6)], [0, 0, GNTST.bad_gntref, GNTST.permission_denied, 0, GNTST.bad_copy_arg]);
});

test('the segment array grows for a large batch (a 1 MiB indirect request = 256 segments)', () => {
  let allocs = 0;
  const enc = new GrantCopyEncoder((n) => (allocs++, fakeAlloc(n)), 4);
  const b = new GrantCopyBatch(256);
  for (let i = 0; i < 256; i++) b.add(true, 1, i, 0, 4096, i * 4096);
  assert.is(enc.encodeAll(b, POOL, 256 * 4096), 256);
  assert.is(enc.bytes.length, 256 * 24);
  assert.is(new DataView(enc.bytes.buffer).getUint32(255 * 24 + 8, true), 255);
  assert.is(allocs, 2);
  b.reset();
  b.add(true, 1, 1, 0, 4096, 0);
  enc.encodeAll(b, POOL, 4096);
  assert.is(allocs, 2, 'no allocation once large enough');
});

test.run();
