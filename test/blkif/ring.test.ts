// The shared ring: sizes per order and ABI, index wrap at 2^32, req_event/rsp_event windows,
// re-attach at rsp_prod, and a frontend that runs req_prod more than a ring ahead.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X86_32, X86_64 } from '../../src/blkif/abi';
import { BackRing, FrontRing, ringBytes, ringSize } from '../../src/blkif/ring';
import type { BlkifRequest } from '../../src/blkif/request';

function rw(id: number): BlkifRequest {
  return { kind: 'rw', operation: 0, innerOperation: 0, nrSegments: 1, handle: 0, id: BigInt(id), sectorNumber: BigInt(id), segments: [{ gref: id, firstSect: 0, lastSect: 7 }], indirectGrefs: [] };
}

function pair(order = 0, abi = X86_64) {
  const mem = new ArrayBuffer(ringBytes(order));
  const front = new FrontRing(mem, abi);
  const back = new BackRing(mem, abi);
  return { mem, front, back };
}

function header(mem: ArrayBuffer) {
  return new Uint32Array(mem, 0, 4);
}

test('ring sizes for orders 0..4 in both ABIs: 32, 64, 128, 256, 512', () => {
  for (const abi of [X86_64, X86_32]) {
    for (let order = 0; order <= 4; order++) {
      assert.is(ringSize(ringBytes(order), abi.stride), 32 << order, `${abi.name} order ${order}`);
      assert.is(new BackRing(new ArrayBuffer(ringBytes(order)), abi).size, 32 << order);
    }
  }
  assert.is(ringSize(64 + 111, 112), 0);
  assert.throws(() => new BackRing(new ArrayBuffer(100), X86_64), /holds no/);
});

test('SHARED_RING_INIT: indexes 0, events 1', () => {
  const mem = new ArrayBuffer(4096);
  new Uint8Array(mem).fill(0xcc);
  new FrontRing(mem, X86_64);
  assert.equal(Array.from(header(mem)), [0, 1, 0, 1]);
  assert.ok(new Uint8Array(mem, 16, 48).every((x) => x === 0));
});

test('requests travel front to back and responses back, slot by slot', () => {
  const { front, back } = pair(1, X86_32);
  for (let i = 0; i < 5; i++) front.putRequest(rw(i));
  assert.is(back.unconsumed(), 0, 'not visible before push');
  assert.ok(front.pushRequests(), 'first push notifies (req_event = 1)');
  assert.is(back.unconsumed(), 5);
  for (let i = 0; i < 5; i++) {
    const r = back.takeRequest();
    assert.is(r.kind === 'rw' && r.id, BigInt(i));
  }
  assert.is(back.inFlight(), 5);
  for (let i = 0; i < 5; i++) back.putResponse(BigInt(i), 0, 0);
  assert.ok(back.pushResponses(), 'rsp_event = 1 lies in (0, 5]');
  assert.is(front.unconsumedResponses(), 5);
  for (let i = 0; i < 5; i++) assert.is(front.takeResponse().id, BigInt(i));
});

test('a response lands in the slot of its request', () => {
  const { front, back } = pair();
  front.putRequest(rw(1));
  front.putRequest(rw(2));
  front.pushRequests();
  back.takeRequest();
  back.takeRequest();
  back.putResponse(1n, 0, 0);
  back.putResponse(2n, 0, -1);
  assert.is(new DataView(front.slotBytes(1).slice().buffer).getBigUint64(0, true), 2n);
  assert.throws(() => back.putResponse(3n, 0, 0), /no request in flight/);
});

test('notify windows: rsp_event outside (old, new] gives no notify', () => {
  const { mem, front, back } = pair();
  const h = header(mem);
  for (let i = 0; i < 4; i++) front.putRequest(rw(i));
  front.pushRequests();
  for (let i = 0; i < 4; i++) back.takeRequest();
  back.putResponse(0n, 0, 0);
  assert.ok(back.pushResponses()); // rsp_event 1 in (0,1]
  back.putResponse(1n, 0, 0);
  assert.not.ok(back.pushResponses(), 'rsp_event 1 not in (1,2]');
  h[3] = 4; // frontend wants to hear at 4
  back.putResponse(2n, 0, 0);
  assert.not.ok(back.pushResponses(), '4 not in (2,3]');
  back.putResponse(3n, 0, 0);
  assert.ok(back.pushResponses(), '4 in (3,4]');
  // Requests: req_event moves only through finalCheckForRequests.
  assert.is(h[1], 1);
  assert.not.ok(back.finalCheckForRequests());
  assert.is(h[1], 5, 'req_event = req_cons + 1');
  front.putRequest(rw(9));
  assert.ok(front.pushRequests(), '5 in (4,5]');
  front.putRequest(rw(10));
  assert.not.ok(front.pushRequests(), 'no notify again until the backend asks');
  assert.ok(back.finalCheckForRequests());
});

test('finalCheckForRequests re-checks after setting req_event (no lost wakeup)', () => {
  const { front, back } = pair();
  // Backend sees nothing, then the frontend produces between the check and req_event store:
  // simulate by producing before the call; the first check already sees it.
  front.putRequest(rw(1));
  front.pushRequests();
  assert.ok(back.finalCheckForRequests());
});

test('front: finalCheckForResponses sets rsp_event = rsp_cons + 1', () => {
  const { mem, front, back } = pair();
  front.putRequest(rw(1));
  front.pushRequests();
  back.takeRequest();
  assert.not.ok(front.finalCheckForResponses());
  assert.is(header(mem)[3], 1);
  back.putResponse(1n, 0, 0);
  assert.ok(back.pushResponses());
  front.takeResponse();
  assert.not.ok(front.finalCheckForResponses());
  assert.is(header(mem)[3], 2);
});

test('indexes wrap at 2^32: requests and responses across the wrap, with notifies', () => {
  const mem = new ArrayBuffer(4096);
  const h = header(mem);
  const start = 0xffffffff - 20;
  const front0 = new FrontRing(mem, X86_64);
  void front0;
  h[0] = start; h[2] = start; h[1] = start + 1; h[3] = start + 1;
  const front = new FrontRing(mem, X86_64, { init: false });
  const back = new BackRing(mem, X86_64);
  assert.is(back.reqCons, start);
  let next = 0;
  let got = 0;
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 20; i++) front.putRequest(rw(next++));
    front.pushRequests();
    assert.is(back.unconsumed(), 20);
    assert.not.ok(back.broken());
    while (back.unconsumed() > 0) {
      const r = back.takeRequest();
      if (r.kind === 'rw') back.putResponse(r.id, 0, 0);
    }
    const notify = back.pushResponses();
    assert.ok(notify || round > 0, 'first round notifies');
    while (front.unconsumedResponses() > 0) assert.is(front.takeResponse().id, BigInt(got++));
    front.finalCheckForResponses();
    back.finalCheckForRequests();
  }
  assert.is(got, 80);
  assert.ok(h[0] < 100, 'req_prod wrapped');
  assert.is(h[0], (start + 80) >>> 0);
});

test('notify across the wrap: rsp_event just past 2^32', () => {
  const mem = new ArrayBuffer(4096);
  new FrontRing(mem, X86_64);
  const h = header(mem);
  h[0] = 2; h[2] = 0xfffffffe; h[3] = 1; // answered up to 2^32-2; wants notify at index 1
  const back = new BackRing(mem, X86_64);
  assert.is(back.unconsumed(), 4);
  for (let i = 0; i < 4; i++) back.takeRequest();
  back.putResponse(0n, 0, 0); // → 0xffffffff
  assert.not.ok(back.pushResponses());
  back.putResponse(0n, 0, 0); // → 0
  assert.not.ok(back.pushResponses());
  back.putResponse(0n, 0, 0); // → 1
  assert.ok(back.pushResponses());
});

test('re-attach at rsp_prod replays the unanswered slots [rsp_prod, req_prod)', () => {
  const { mem, front, back } = pair();
  for (let i = 0; i < 6; i++) front.putRequest(rw(i));
  front.pushRequests();
  for (let i = 0; i < 6; i++) back.takeRequest();
  back.putResponse(0n, 0, 0);
  back.putResponse(1n, 0, 0);
  back.pushResponses();
  // The worker dies with 4 requests taken but unanswered; a new one attaches.
  const again = new BackRing(mem, X86_64);
  assert.is(again.unconsumed(), 4);
  const ids: bigint[] = [];
  while (again.unconsumed() > 0) {
    const r = again.takeRequest();
    if (r.kind === 'rw') ids.push(r.id);
  }
  assert.equal(ids, [2n, 3n, 4n, 5n]);
});

test('req_prod more than a ring ahead (or behind) is detected, never followed', () => {
  const { front, back } = pair();
  front.setReqProd(33);
  assert.ok(back.broken());
  assert.is(back.unconsumed(), 0);
  front.setReqProd(32);
  assert.not.ok(back.broken());
  assert.is(back.unconsumed(), 32);
  front.setReqProd(0xffffffff); // moved backwards
  assert.ok(back.broken());
  assert.is(back.unconsumed(), 0);
});

test('unconsumed never exceeds the free room: in-flight requests hold their slots', () => {
  const { front, back } = pair();
  for (let i = 0; i < 32; i++) front.putRequest(rw(i));
  front.pushRequests();
  assert.is(front.freeRequests(), 0);
  assert.throws(() => front.putRequest(rw(99)), /ring full/);
  for (let i = 0; i < 10; i++) back.takeRequest();
  assert.is(back.unconsumed(), 22);
  for (let i = 0; i < 10; i++) back.putResponse(BigInt(i), 0, 0);
  back.pushResponses();
  for (let i = 0; i < 10; i++) front.takeResponse();
  assert.is(front.freeRequests(), 10);
});

test.run();
