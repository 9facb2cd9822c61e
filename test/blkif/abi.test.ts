// The ABI codecs: every operation in both ABIs at the exact offsets of blkif.h (abi-c.test.ts
// checks them against the header compiled by gcc), and responses that touch only id,
// operation and status.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { abiForProtocol, X86_32, X86_64, type Abi } from '../../src/blkif/abi';
import { readIndirectSegments, writeSegment } from '../../src/blkif/codec';
import { BlkifOp } from '../../src/blkif/constants';
import type { BlkifRequest } from '../../src/blkif/request';

const ID = 0x0123456789abcdefn;
const SECTOR = 0xfedcba9876543210n;

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

const layouts: Array<[Abi, { id: number; sector: number; segs: number; nrSectors: number; indId: number; indSector: number; indHandle: number; indGrefs: number }]> = [
  [X86_64, { id: 8, sector: 16, segs: 24, nrSectors: 24, indId: 8, indSector: 16, indHandle: 24, indGrefs: 28 }],
  [X86_32, { id: 4, sector: 12, segs: 20, nrSectors: 20, indId: 4, indSector: 12, indHandle: 20, indGrefs: 24 }],
];

test('sizes: 112/16 for x86_64, 108/12 for x86_32; stride = request size', () => {
  assert.is(X86_64.requestSize, 112);
  assert.is(X86_64.responseSize, 16);
  assert.is(X86_64.stride, 112);
  assert.is(X86_32.requestSize, 108);
  assert.is(X86_32.responseSize, 12);
  assert.is(X86_32.stride, 108);
});

test('abiForProtocol: native when absent, both x86 ABIs, errors for arm and junk', () => {
  assert.is(abiForProtocol(undefined), X86_64);
  assert.is(abiForProtocol('x86_64-abi'), X86_64);
  assert.is(abiForProtocol('x86_32-abi'), X86_32);
  assert.throws(() => abiForProtocol('arm-abi'), /not supported/);
  assert.throws(() => abiForProtocol('x86_16-abi'), /unknown protocol/);
  assert.throws(() => abiForProtocol(''), /unknown protocol/);
});

for (const [abi, o] of layouts) {
  for (const op of [BlkifOp.READ, BlkifOp.WRITE, BlkifOp.WRITE_BARRIER, BlkifOp.FLUSH_DISKCACHE]) {
    test(`${abi.name}: op ${op} read/write at the blkif.h offsets`, () => {
      const b = new Uint8Array(abi.stride + 8).fill(0x55);
      const at = 4;
      const v = dv(b);
      b[at] = op;
      b[at + 1] = 11;
      v.setUint16(at + 2, 0x5163, true);
      v.setBigUint64(at + o.id, ID, true);
      v.setBigUint64(at + o.sector, SECTOR, true);
      for (let i = 0; i < 11; i++) {
        v.setUint32(at + o.segs + 8 * i, 1000 + i, true);
        b[at + o.segs + 8 * i + 4] = i % 8;
        b[at + o.segs + 8 * i + 5] = 7;
      }
      const r = abi.readRequest(b, at);
      assert.is(r.kind, 'rw');
      if (r.kind !== 'rw') return;
      assert.is(r.operation, op);
      assert.is(r.innerOperation, op);
      assert.is(r.nrSegments, 11);
      assert.is(r.handle, 0x5163);
      assert.is(r.id, ID);
      assert.is(r.sectorNumber, SECTOR);
      assert.is(r.segments.length, 11);
      assert.equal(r.segments[3], { gref: 1003, firstSect: 3, lastSect: 7 });
      // Round trip through writeRequest gives identical meaningful bytes.
      const c = new Uint8Array(b.length);
      abi.writeRequest(c, at, r);
      assert.equal(abi.readRequest(c, at), r);
      assert.equal(Array.from(c.subarray(at, at + 4)), Array.from(b.subarray(at, at + 4)));
      assert.is(dv(c).getBigUint64(at + o.id, true), ID);
      assert.is(dv(c).getUint32(at + o.segs + 8 * 10, true), 1010);
    });
  }

  test(`${abi.name}: nr_segments above 11 copies only 11 segments and keeps the claimed count`, () => {
    const b = new Uint8Array(abi.stride);
    b[0] = BlkifOp.READ;
    b[1] = 200;
    const r = abi.readRequest(b, 0);
    assert.ok(r.kind === 'rw' && r.nrSegments === 200 && r.segments.length === 11);
  });

  test(`${abi.name}: discard at the blkif.h offsets`, () => {
    const b = new Uint8Array(abi.stride);
    const v = dv(b);
    b[0] = BlkifOp.DISCARD;
    b[1] = 1;
    v.setUint16(2, 51712, true);
    v.setBigUint64(o.id, ID, true);
    v.setBigUint64(o.sector, 2048n, true);
    v.setBigUint64(o.nrSectors, 0xffffffffffn, true);
    const r = abi.readRequest(b, 0);
    assert.equal(r, { kind: 'discard', operation: 5, flag: 1, handle: 51712, id: ID, sectorNumber: 2048n, nrSectors: 0xffffffffffn });
    const c = new Uint8Array(abi.stride);
    abi.writeRequest(c, 0, r);
    assert.equal(Array.from(c.subarray(0, o.nrSectors + 8)), Array.from(b.subarray(0, o.nrSectors + 8)));
  });

  test(`${abi.name}: indirect at the blkif.h offsets (u16 nr_segments, grefs per page)`, () => {
    const b = new Uint8Array(abi.stride);
    const v = dv(b);
    b[0] = BlkifOp.INDIRECT;
    b[1] = BlkifOp.WRITE;
    v.setUint16(2, 1025, true); // 3 pages
    v.setBigUint64(o.indId, ID, true);
    v.setBigUint64(o.indSector, 77n, true);
    v.setUint16(o.indHandle, 0x1234, true);
    for (let i = 0; i < 8; i++) v.setUint32(o.indGrefs + 4 * i, 500 + i, true);
    const r = abi.readRequest(b, 0);
    assert.is(r.kind, 'rw');
    if (r.kind !== 'rw') return;
    assert.is(r.operation, BlkifOp.INDIRECT);
    assert.is(r.innerOperation, BlkifOp.WRITE);
    assert.is(r.nrSegments, 1025);
    assert.is(r.id, ID);
    assert.is(r.sectorNumber, 77n);
    assert.is(r.handle, 0x1234);
    assert.equal(r.indirectGrefs, [500, 501, 502]);
    const c = new Uint8Array(abi.stride);
    abi.writeRequest(c, 0, r);
    assert.equal(abi.readRequest(c, 0), r);
    assert.is(dv(c).getUint32(o.indGrefs + 8, true), 502);
    assert.is(dv(c).getUint16(o.indHandle, true), 0x1234);
  });

  test(`${abi.name}: indirect with a huge nr_segments copies at most 8 grefs`, () => {
    const b = new Uint8Array(abi.stride);
    b[0] = BlkifOp.INDIRECT;
    dv(b).setUint16(2, 0xffff, true);
    const r = abi.readRequest(b, 0);
    assert.ok(r.kind === 'rw' && r.indirectGrefs.length === 8 && r.nrSegments === 0xffff);
  });

  for (const op of [BlkifOp.RESERVED_1, 7, 200, 255]) {
    test(`${abi.name}: unknown op ${op} yields only id and operation`, () => {
      const b = new Uint8Array(abi.stride).fill(0xee);
      b[0] = op;
      dv(b).setBigUint64(o.id, ID, true);
      assert.equal(abi.readRequest(b, 0), { kind: 'unknown', operation: op, id: ID });
    });
  }

  test(`${abi.name}: a response writes bytes 0-7, 8, 10-11 of its slot and nothing else`, () => {
    const b = new Uint8Array(abi.stride * 3).fill(0xaa);
    const at = abi.stride;
    abi.writeResponse(b, at, 0xffffffffffffffffn, BlkifOp.DISCARD, -2);
    for (let i = 0; i < b.length; i++) {
      const rel = i - at;
      const touched = rel >= 0 && (rel < 9 || rel === 10 || rel === 11);
      if (!touched) assert.is(b[i], 0xaa, `byte ${rel} of the slot was changed`);
    }
    assert.equal(abi.readResponse(b, at), { id: 0xffffffffffffffffn, operation: 5, status: -2 });
    abi.writeResponse(b, at, 42n, BlkifOp.READ, 0);
    assert.equal(abi.readResponse(b, at), { id: 42n, operation: 0, status: 0 });
    assert.is(b[at + 9], 0xaa);
  });
}

test('indirect descriptor pages: 8-byte segments decoded back to back', () => {
  const pages = new Uint8Array(4096 * 2);
  for (let i = 0; i < 600; i++) writeSegment(pages, i * 8, { gref: i + 7, firstSect: 1, lastSect: 6 });
  const segs = readIndirectSegments(pages, 0, 600);
  assert.is(segs.length, 600);
  assert.equal(segs[0], { gref: 7, firstSect: 1, lastSect: 6 });
  assert.equal(segs[599], { gref: 606, firstSect: 1, lastSect: 6 });
  assert.is(dv(pages).getUint32(512 * 8, true), 519); // first segment of page 2
});

test('requests are copies: rewriting the slot afterwards changes nothing', () => {
  const b = new Uint8Array(112);
  const req: BlkifRequest = { kind: 'rw', operation: 1, innerOperation: 1, nrSegments: 1, handle: 0, id: 1n, sectorNumber: 0n, segments: [{ gref: 9, firstSect: 0, lastSect: 7 }], indirectGrefs: [] };
  X86_64.writeRequest(b, 0, req);
  const r = X86_64.readRequest(b, 0);
  b.fill(0xff);
  assert.ok(r.kind === 'rw' && r.segments[0].gref === 9 && r.nrSegments === 1 && r.id === 1n);
});

test.run();
