// The blkif ABIs against C: every size, offset and constant the codecs rely on, read from Xen's
// own xen/io/blkif.h (libxen-dev) compiled by gcc for x86_64 (-m64) and for i386 (-m32, where a
// u64 is only 4-aligned: the x86_32-abi). The codecs are then checked by behaviour: what they
// write must land at the C offsets, and what sits at the C offsets must be what they read. So
// the test fails when our tables are wrong, and when the header moves (the other side).
// Compiled with -S -ffreestanding and read from the assembly: nothing runs, so -m32 needs no
// i386 C library.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Abi, X86_32, X86_64 } from '../../src/blkif/abi';
import { SEGMENT_SIZE } from '../../src/blkif/codec';
import * as K from '../../src/blkif/constants';
import type { DiscardRequest, RwRequest } from '../../src/blkif/request';
import { withTempDir } from '../helpers/temp';

const HEADER = '/usr/include/xen/io/blkif.h';

/** Name → C expression; the probe emits them in this order as one int array. */
const PROBES: Record<string, string> = {
  'sizeof request': 'sizeof(struct blkif_request)',
  'sizeof response': 'sizeof(struct blkif_response)',
  'sizeof entry': 'sizeof(union blkif_sring_entry)',
  'sizeof segment': 'sizeof(struct blkif_request_segment)',
  'ring header': 'offsetof(struct blkif_sring, ring)',
  'seg.gref': 'offsetof(struct blkif_request_segment, gref)',
  'seg.first_sect': 'offsetof(struct blkif_request_segment, first_sect)',
  'seg.last_sect': 'offsetof(struct blkif_request_segment, last_sect)',
  'rw.operation': 'offsetof(struct blkif_request, operation)',
  'rw.nr_segments': 'offsetof(struct blkif_request, nr_segments)',
  'rw.handle': 'offsetof(struct blkif_request, handle)',
  'rw.id': 'offsetof(struct blkif_request, id)',
  'rw.sector_number': 'offsetof(struct blkif_request, sector_number)',
  'rw.seg': 'offsetof(struct blkif_request, seg)',
  'discard.operation': 'offsetof(struct blkif_request_discard, operation)',
  'discard.flag': 'offsetof(struct blkif_request_discard, flag)',
  'discard.handle': 'offsetof(struct blkif_request_discard, handle)',
  'discard.id': 'offsetof(struct blkif_request_discard, id)',
  'discard.sector_number': 'offsetof(struct blkif_request_discard, sector_number)',
  'discard.nr_sectors': 'offsetof(struct blkif_request_discard, nr_sectors)',
  'indirect.operation': 'offsetof(struct blkif_request_indirect, operation)',
  'indirect.indirect_op': 'offsetof(struct blkif_request_indirect, indirect_op)',
  'indirect.nr_segments': 'offsetof(struct blkif_request_indirect, nr_segments)',
  'indirect.id': 'offsetof(struct blkif_request_indirect, id)',
  'indirect.sector_number': 'offsetof(struct blkif_request_indirect, sector_number)',
  'indirect.handle': 'offsetof(struct blkif_request_indirect, handle)',
  'indirect.indirect_grefs': 'offsetof(struct blkif_request_indirect, indirect_grefs)',
  'rsp.id': 'offsetof(struct blkif_response, id)',
  'rsp.operation': 'offsetof(struct blkif_response, operation)',
  'rsp.status': 'offsetof(struct blkif_response, status)',
  BLKIF_OP_READ: 'BLKIF_OP_READ',
  BLKIF_OP_WRITE: 'BLKIF_OP_WRITE',
  BLKIF_OP_WRITE_BARRIER: 'BLKIF_OP_WRITE_BARRIER',
  BLKIF_OP_FLUSH_DISKCACHE: 'BLKIF_OP_FLUSH_DISKCACHE',
  BLKIF_OP_RESERVED_1: 'BLKIF_OP_RESERVED_1',
  BLKIF_OP_DISCARD: 'BLKIF_OP_DISCARD',
  BLKIF_OP_INDIRECT: 'BLKIF_OP_INDIRECT',
  BLKIF_RSP_OKAY: 'BLKIF_RSP_OKAY',
  BLKIF_RSP_ERROR: 'BLKIF_RSP_ERROR',
  BLKIF_RSP_EOPNOTSUPP: 'BLKIF_RSP_EOPNOTSUPP',
  BLKIF_MAX_SEGMENTS_PER_REQUEST: 'BLKIF_MAX_SEGMENTS_PER_REQUEST',
  BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: 'BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST',
  BLKIF_DISCARD_SECURE: 'BLKIF_DISCARD_SECURE',
  VDISK_CDROM: 'VDISK_CDROM',
  VDISK_REMOVABLE: 'VDISK_REMOVABLE',
  VDISK_READONLY: 'VDISK_READONLY',
};

type Probed = Record<string, number>;

/** Compiles the probe for -m64 or -m32 and reads the array back out of the assembly. */
function probe(bits: 64 | 32): Probed {
  return withTempDir((dir) => {
    const src = path.join(dir, 'probe.c');
    fs.writeFileSync(src, `#include <stddef.h>
#include <stdint.h>
#include <xen/io/blkif.h>
const int afsfile_probe[] = {
${Object.values(PROBES).map((e) => `  (int)(${e}),`).join('\n')}
};
`);
    const args = [`-m${bits}`, '-ffreestanding', '-Wall', '-Werror', '-S', '-o', '-', src];
    const asm = execFileSync('gcc', args, { encoding: 'utf8', stdio: 'pipe' });
    const body = asm.slice(asm.indexOf('afsfile_probe:'));
    const values = [...body.matchAll(/^\s*\.long\s+(-?\d+)\s*$/gm)].map((m) => Number(m[1]));
    const keys = Object.keys(PROBES);
    assert.is(values.length, keys.length, `one .long per probe in gcc -m${bits} output`);
    return Object.fromEntries(keys.map((k, i) => [k, values[i]!]));
  }, 'afsfile-blkif-');
}

const cache = new Map<number, Probed>();
const c = (bits: 64 | 32): Probed => cache.get(bits) ?? (cache.set(bits, probe(bits)), cache.get(bits)!);

test(`Xen's blkif.h is installed (apt install libxen-dev)`, () => {
  assert.ok(fs.existsSync(HEADER), HEADER);
});

test('protocol constants equal the header', () => {
  const h = c(64);
  for (const [name, v] of Object.entries(K.BlkifOp)) assert.is(v, h[`BLKIF_OP_${name}`], `BLKIF_OP_${name}`);
  for (const [name, v] of Object.entries(K.BlkifStatus)) assert.is(v, h[`BLKIF_RSP_${name}`], `BLKIF_RSP_${name}`);
  assert.is(K.MAX_SEGMENTS_PER_REQUEST, h.BLKIF_MAX_SEGMENTS_PER_REQUEST);
  assert.is(K.MAX_INDIRECT_PAGES_PER_REQUEST, h.BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
  assert.is(K.BLKIF_DISCARD_SECURE, h.BLKIF_DISCARD_SECURE);
  assert.is(K.VDISK_CDROM, h.VDISK_CDROM);
  assert.is(K.VDISK_REMOVABLE, h.VDISK_REMOVABLE);
  assert.is(K.VDISK_READONLY, h.VDISK_READONLY);
  assert.is(K.RING_HEADER_SIZE, h['ring header']);
  assert.is(SEGMENT_SIZE, h['sizeof segment']);
  assert.is(K.SEGMENTS_PER_INDIRECT_PAGE, K.PAGE_SIZE / h['sizeof segment']);
});

const abis: Array<[Abi, 64 | 32]> = [[X86_64, 64], [X86_32, 32]];

function u(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

for (const [abi, bits] of abis) {
  test(`${abi.name}: sizes equal gcc -m${bits}`, () => {
    const h = c(bits);
    assert.is(abi.requestSize, h['sizeof request'], 'sizeof(struct blkif_request)');
    assert.is(abi.responseSize, h['sizeof response'], 'sizeof(struct blkif_response)');
    assert.is(abi.stride, h['sizeof entry'], 'sizeof(union blkif_sring_entry)');
    // Discard and indirect share the slot: never bigger than the read/write request.
    assert.ok(h['indirect.indirect_grefs'] + 4 * K.MAX_INDIRECT_PAGES_PER_REQUEST <= abi.requestSize);
  });

  // A slot away from 0 so that an offset taken from the wrong base shows.
  const AT = abi.stride;
  const slot = (): Uint8Array => new Uint8Array(abi.stride * 3);

  test(`${abi.name}: read/write requests at the C offsets, both ways`, () => {
    const h = c(bits);
    const req: RwRequest = {
      kind: 'rw', operation: K.BlkifOp.WRITE, innerOperation: K.BlkifOp.WRITE, nrSegments: 3, handle: 0x5a51,
      id: 0x0123456789abcdefn, sectorNumber: 0x0f1e2d3c4b5a6978n,
      segments: [
        { gref: 0x11223344, firstSect: 1, lastSect: 6 },
        { gref: 7, firstSect: 0, lastSect: 7 },
        { gref: 0xfffffff0, firstSect: 2, lastSect: 2 },
      ],
      indirectGrefs: [],
    };
    const b = slot();
    abi.writeRequest(b, AT, req);
    const v = u(b);
    assert.is(v.getUint8(AT + h['rw.operation']), req.operation);
    assert.is(v.getUint8(AT + h['rw.nr_segments']), 3);
    assert.is(v.getUint16(AT + h['rw.handle'], true), req.handle);
    assert.is(v.getBigUint64(AT + h['rw.id'], true), req.id);
    assert.is(v.getBigUint64(AT + h['rw.sector_number'], true), req.sectorNumber);
    req.segments.forEach((s, i) => {
      const at = AT + h['rw.seg'] + i * h['sizeof segment'];
      assert.is(v.getUint32(at + h['seg.gref'], true), s.gref, `seg[${i}].gref`);
      assert.is(v.getUint8(at + h['seg.first_sect']), s.firstSect, `seg[${i}].first_sect`);
      assert.is(v.getUint8(at + h['seg.last_sect']), s.lastSect, `seg[${i}].last_sect`);
    });
    assert.equal(abi.readRequest(b, AT), req);
  });

  test(`${abi.name}: discard requests at the C offsets, both ways`, () => {
    const h = c(bits);
    const b = slot();
    const v = u(b);
    v.setUint8(AT + h['discard.operation'], K.BlkifOp.DISCARD);
    v.setUint8(AT + h['discard.flag'], K.BLKIF_DISCARD_SECURE);
    v.setUint16(AT + h['discard.handle'], 0x0203, true);
    v.setBigUint64(AT + h['discard.id'], 0xa1a2a3a4a5a6a7a8n, true);
    v.setBigUint64(AT + h['discard.sector_number'], 0x1000n, true);
    v.setBigUint64(AT + h['discard.nr_sectors'], 0x0000000100000002n, true);
    const want: DiscardRequest = {
      kind: 'discard', operation: K.BlkifOp.DISCARD, flag: K.BLKIF_DISCARD_SECURE, handle: 0x0203,
      id: 0xa1a2a3a4a5a6a7a8n, sectorNumber: 0x1000n, nrSectors: 0x0000000100000002n,
    };
    assert.equal(abi.readRequest(b, AT), want);
    const back = slot();
    abi.writeRequest(back, AT, want);
    assert.equal(back, b, 'writeRequest puts every field where the header has it');
  });

  test(`${abi.name}: indirect requests at the C offsets, both ways`, () => {
    const h = c(bits);
    const b = slot();
    const v = u(b);
    const grefs = [0x101, 0x202, 0x303];
    v.setUint8(AT + h['indirect.operation'], K.BlkifOp.INDIRECT);
    v.setUint8(AT + h['indirect.indirect_op'], K.BlkifOp.READ);
    v.setUint16(AT + h['indirect.nr_segments'], 1030, true);
    v.setBigUint64(AT + h['indirect.id'], 0x7766554433221100n, true);
    v.setBigUint64(AT + h['indirect.sector_number'], 0x123456789n, true);
    v.setUint16(AT + h['indirect.handle'], 0x0a0b, true);
    grefs.forEach((g, i) => v.setUint32(AT + h['indirect.indirect_grefs'] + 4 * i, g, true));
    const got = abi.readRequest(b, AT);
    assert.is(got.kind, 'rw');
    const r = got as RwRequest;
    assert.is(r.operation, K.BlkifOp.INDIRECT);
    assert.is(r.innerOperation, K.BlkifOp.READ);
    assert.is(r.nrSegments, 1030);
    assert.is(r.id, 0x7766554433221100n);
    assert.is(r.sectorNumber, 0x123456789n);
    assert.is(r.handle, 0x0a0b);
    assert.equal(r.indirectGrefs, grefs, 'ceil(1030 / 512) = 3 descriptor pages');
    const back = slot();
    abi.writeRequest(back, AT, r);
    assert.equal(back, b, 'writeRequest puts every field where the header has it');
  });

  test(`${abi.name}: responses at the C offsets, and nothing else of the slot written`, () => {
    const h = c(bits);
    const b = slot().fill(0xee);
    abi.writeResponse(b, AT, 0xfeedfacecafebeefn, K.BlkifOp.FLUSH_DISKCACHE, K.BlkifStatus.EOPNOTSUPP);
    const v = u(b);
    assert.is(v.getBigUint64(AT + h['rsp.id'], true), 0xfeedfacecafebeefn);
    assert.is(v.getUint8(AT + h['rsp.operation']), K.BlkifOp.FLUSH_DISKCACHE);
    assert.is(v.getInt16(AT + h['rsp.status'], true), K.BlkifStatus.EOPNOTSUPP);
    const written = new Set<number>();
    for (const [f, n] of [['rsp.id', 8], ['rsp.operation', 1], ['rsp.status', 2]] as const) {
      for (let i = 0; i < n; i++) written.add(AT + h[f] + i);
    }
    for (let i = 0; i < b.length; i++) if (!written.has(i)) assert.is(b[i], 0xee, `byte ${i} untouched`);
    const want = { id: 0xfeedfacecafebeefn, operation: K.BlkifOp.FLUSH_DISKCACHE, status: K.BlkifStatus.EOPNOTSUPP };
    assert.equal(abi.readResponse(b, AT), want);
  });
}

test.run();
