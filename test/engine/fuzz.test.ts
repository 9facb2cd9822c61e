// Random bytes in ring slots (a hostile or buggy frontend): every request is answered with
// OKAY, ERROR or EOPNOTSUPP in its own slot, in order; nothing is written outside the image;
// the engine never throws. Deterministic (seeded).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X86_32, X86_64 } from '../../src/blkif/abi';
import { BlkifOp } from '../../src/blkif/constants';
import { MemFile, Rig, tick } from './fixture';

function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

for (const abi of [X86_64, X86_32]) {
  test(`${abi.name}: 3000 random slots, all answered in order, no crash`, async () => {
    const file = new MemFile(64 * 512); // a tiny image: most ranges are past the end
    const rig = new Rig(file, { abi, order: 2, limits: { sectors: 64n, readOnly: false, maxIndirectSegments: 256, discard: true, flush: true, barrier: true } });
    const good = Array.from({ length: 4 }, () => rig.grants.grant());
    const rnd = prng(abi.stride);
    const total = 3000;
    let sent = 0;
    let answered = 0;
    const idOf = new Map<number, bigint>();
    while (answered < total) {
      while (sent < total && rig.front.freeRequests() > 0) {
        const idx = rig.front.reqProdPvt;
        const slot = rig.front.slotBytes(idx);
        for (let i = 0; i < slot.length; i++) slot[i] = rnd() & 0xff;
        // Bias towards valid-looking requests so the data paths run too.
        const r = rnd() % 4;
        if (r === 0) slot[0] = rnd() % 7; // a known op
        if (r === 1) {
          slot[0] = rnd() % 2; // READ/WRITE, one segment on a granted page, a small sector
          slot[1] = 1;
          const v = new DataView(slot.buffer, slot.byteOffset, slot.length);
          const segAt = abi === X86_64 ? 24 : 20;
          v.setBigUint64(abi === X86_64 ? 16 : 12, BigInt(rnd() % 80), true);
          v.setUint32(segAt, good[rnd() % 4], true);
          slot[segAt + 4] = rnd() % 9;
          slot[segAt + 5] = rnd() % 9;
        }
        if (r === 2) slot[0] = BlkifOp.INDIRECT;
        const v = new DataView(slot.buffer, slot.byteOffset, slot.length);
        idOf.set(idx, v.getBigUint64(slot[0] === BlkifOp.INDIRECT ? (abi === X86_64 ? 8 : 4) : abi === X86_64 ? 8 : 4, true));
        rig.front.reqProdPvt = (idx + 1) >>> 0;
        sent++;
      }
      if (rig.front.pushRequests()) rig.engine.kick();
      await tick();
      while (rig.front.unconsumedResponses() > 0) {
        const idx = rig.front.rspCons;
        const rsp = rig.front.takeResponse();
        assert.is(rsp.id, idOf.get(idx), `response ${answered} answers the request in its slot`);
        assert.ok(rsp.status === 0 || rsp.status === -1 || rsp.status === -2, `status ${rsp.status}`);
        idOf.delete(idx);
        answered++;
      }
      rig.front.finalCheckForResponses();
    }
    assert.is(file.outOfBounds, 0, 'no I/O outside the image');
    assert.ok(file.log.length > 100, `data paths ran: ${file.log.length} file operations`);
    const st = rig.engine.stats();
    assert.ok(st.errors > 0 && st.errors < total, `errors ${st.errors}`);
    assert.is(st.inFlight, 0);
  });
}

test.run();
