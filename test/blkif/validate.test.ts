// Request validation: every bad input of issue 3 that can be judged from the request alone.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlkifOp, BlkifStatus } from '../../src/blkif/constants';
import type { RwRequest, Segment } from '../../src/blkif/request';
import { planIndirect, planRequest, type DeviceLimits, type Plan } from '../../src/blkif/validate';

const lim: DeviceLimits = { sectors: 2048n, readOnly: false, maxIndirectSegments: 256, discard: true, flush: true, barrier: true };
const ro: DeviceLimits = { ...lim, readOnly: true };

function seg(gref: number, first = 0, last = 7): Segment {
  return { gref, firstSect: first, lastSect: last };
}
function rw(operation: number, sector: bigint, segments: Segment[], nr = segments.length): RwRequest {
  return { kind: 'rw', operation, innerOperation: operation, nrSegments: nr, handle: 0, id: 7n, sectorNumber: sector, segments, indirectGrefs: [] };
}
function failed(p: Plan, status: number = BlkifStatus.ERROR): string {
  assert.is(p.kind, 'fail');
  if (p.kind !== 'fail') return '';
  assert.is(p.status, status);
  return p.reason;
}

test('a good read: contiguous file offsets, in-page offsets from first_sect', () => {
  const p = planRequest(rw(BlkifOp.READ, 8n, [seg(1, 2, 7), seg(2, 0, 3)]), lim);
  assert.equal(p, {
    kind: 'read', fileOffset: 4096, bytes: 6 * 512 + 4 * 512, flushFirst: false, barrier: false,
    segments: [
      { gref: 1, offsetInPage: 1024, length: 3072, fileOffset: 4096 },
      { gref: 2, offsetInPage: 0, length: 2048, fileOffset: 4096 + 3072 },
    ],
  });
});

test('nr_segments 0 for read and write is an error', () => {
  failed(planRequest(rw(BlkifOp.READ, 0n, [], 0), lim));
  failed(planRequest(rw(BlkifOp.WRITE, 0n, [], 0), lim));
});

test('nr_segments > 11 direct is an error', () => {
  const segs = Array.from({ length: 11 }, (_, i) => seg(i));
  assert.is(planRequest(rw(BlkifOp.READ, 0n, segs), lim).kind, 'read');
  assert.match(failed(planRequest(rw(BlkifOp.READ, 0n, segs, 12), lim)), /12 segments/);
  failed(planRequest(rw(BlkifOp.WRITE, 0n, segs, 255), lim));
});

test('first_sect > last_sect, or either > 7, is an error', () => {
  failed(planRequest(rw(BlkifOp.READ, 0n, [seg(1, 5, 4)]), lim));
  failed(planRequest(rw(BlkifOp.READ, 0n, [seg(1, 0, 8)]), lim));
  failed(planRequest(rw(BlkifOp.READ, 0n, [seg(1, 8, 8)]), lim));
  failed(planRequest(rw(BlkifOp.WRITE, 0n, [seg(1), seg(2, 3, 255)]), lim));
});

test('sectors past the end, including u64 overflow, are errors', () => {
  assert.is(planRequest(rw(BlkifOp.READ, 2040n, [seg(1)]), lim).kind, 'read');
  failed(planRequest(rw(BlkifOp.READ, 2041n, [seg(1)]), lim));
  failed(planRequest(rw(BlkifOp.WRITE, 2048n, [seg(1, 0, 0)]), lim));
  failed(planRequest(rw(BlkifOp.READ, 0xfffffffffffffff8n, [seg(1)]), lim));
  failed(planRequest({ kind: 'discard', operation: 5, flag: 0, handle: 0, id: 1n, sectorNumber: 8n, nrSectors: 0xfffffffffffffffcn }, lim));
  failed(planRequest({ kind: 'discard', operation: 5, flag: 0, handle: 0, id: 1n, sectorNumber: 2047n, nrSectors: 2n }, lim));
});

test('unknown operation: EOPNOTSUPP', () => {
  failed(planRequest({ kind: 'unknown', operation: 4, id: 1n }, lim), BlkifStatus.EOPNOTSUPP);
  failed(planRequest({ kind: 'unknown', operation: 99, id: 1n }, lim), BlkifStatus.EOPNOTSUPP);
});

test('read-only: write, discard, barrier, flush with data fail; read and plain flush work', () => {
  failed(planRequest(rw(BlkifOp.WRITE, 0n, [seg(1)]), ro));
  failed(planRequest(rw(BlkifOp.WRITE_BARRIER, 0n, [seg(1)]), ro));
  failed(planRequest(rw(BlkifOp.FLUSH_DISKCACHE, 0n, [seg(1)]), ro));
  failed(planRequest({ kind: 'discard', operation: 5, flag: 0, handle: 0, id: 1n, sectorNumber: 0n, nrSectors: 8n }, { ...ro, discard: false }), BlkifStatus.EOPNOTSUPP);
  failed(planRequest({ kind: 'discard', operation: 5, flag: 0, handle: 0, id: 1n, sectorNumber: 0n, nrSectors: 8n }, { ...ro, discard: true }));
  const ind = { ...rw(BlkifOp.INDIRECT, 0n, []), innerOperation: BlkifOp.WRITE, nrSegments: 3, indirectGrefs: [5] };
  failed(planRequest(ind, ro));
  assert.is(planRequest(rw(BlkifOp.READ, 0n, [seg(1)]), ro).kind, 'read');
  assert.equal(planRequest(rw(BlkifOp.FLUSH_DISKCACHE, 0n, [], 0), ro), { kind: 'flush', barrier: false });
});

test('discard: EOPNOTSUPP when not advertised; byte range when it is', () => {
  const d = { kind: 'discard' as const, operation: 5, flag: 0, handle: 0, id: 1n, sectorNumber: 16n, nrSectors: 32n };
  failed(planRequest(d, { ...lim, discard: false }), BlkifStatus.EOPNOTSUPP);
  assert.equal(planRequest(d, lim), { kind: 'discard', fileOffset: 8192, bytes: 16384 });
});

test('flush and barrier: plain, with data, and not advertised', () => {
  assert.equal(planRequest(rw(BlkifOp.FLUSH_DISKCACHE, 0n, [], 0), lim), { kind: 'flush', barrier: false });
  assert.equal(planRequest(rw(BlkifOp.WRITE_BARRIER, 0n, [], 0), lim), { kind: 'flush', barrier: true });
  const f = planRequest(rw(BlkifOp.FLUSH_DISKCACHE, 0n, [seg(1)]), lim);
  assert.ok(f.kind === 'write' && f.flushFirst && !f.barrier);
  const b = planRequest(rw(BlkifOp.WRITE_BARRIER, 0n, [seg(1)]), lim);
  assert.ok(b.kind === 'write' && b.barrier && !b.flushFirst);
  failed(planRequest(rw(BlkifOp.FLUSH_DISKCACHE, 0n, [], 0), { ...lim, flush: false }), BlkifStatus.EOPNOTSUPP);
  failed(planRequest(rw(BlkifOp.WRITE_BARRIER, 0n, [], 0), { ...lim, barrier: false }), BlkifStatus.EOPNOTSUPP);
});

function ind(inner: number, nr: number, grefs: number[]): RwRequest {
  return { kind: 'rw', operation: BlkifOp.INDIRECT, innerOperation: inner, nrSegments: nr, handle: 0, id: 3n, sectorNumber: 0n, segments: [], indirectGrefs: grefs };
}

test('indirect: pages needed, > advertised segments, 0 segments, bad inner op, not advertised', () => {
  assert.equal(planRequest(ind(BlkifOp.READ, 256, [9]), lim), { kind: 'indirect', grefs: [9], nrSegments: 256 });
  assert.equal(planRequest(ind(BlkifOp.READ, 600, [9, 10, 11]), { ...lim, maxIndirectSegments: 4096 }), {
    kind: 'indirect',
    grefs: [9, 10],
    nrSegments: 600,
  });
  failed(planRequest(ind(BlkifOp.READ, 257, [9]), lim));
  failed(planRequest(ind(BlkifOp.READ, 0, []), lim));
  failed(planRequest(ind(BlkifOp.FLUSH_DISKCACHE, 8, [9]), lim));
  failed(planRequest(ind(BlkifOp.INDIRECT, 8, [9]), lim));
  failed(planRequest(ind(BlkifOp.DISCARD, 8, [9]), lim));
  failed(planRequest(ind(BlkifOp.READ, 8, [9]), { ...lim, maxIndirectSegments: 0 }), BlkifStatus.EOPNOTSUPP);
});

test('indirect second stage validates the copied segments', () => {
  const req = ind(BlkifOp.WRITE, 3, [9]);
  const ok = planIndirect(req, [seg(1), seg(2), seg(3, 0, 0)], lim);
  assert.ok(ok.kind === 'write' && ok.bytes === 2 * 4096 + 512 && ok.segments.length === 3);
  failed(planIndirect(req, [seg(1), seg(2, 7, 6), seg(3)], lim));
  failed(planIndirect(req, [seg(1), seg(2)], lim));
  failed(planIndirect({ ...req, sectorNumber: 2040n }, [seg(1), seg(2), seg(3)], lim));
  // > 11 segments is fine for indirect
  const many = Array.from({ length: 100 }, (_, i) => seg(i));
  assert.is(planIndirect(ind(BlkifOp.READ, 100, [9]), many, lim).kind, 'read');
});

test.run();
