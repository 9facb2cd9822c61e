// The simulated blkfront against a backend on the real engine and image: the handshake keys
// Linux blkfront writes, verified I/O (direct, indirect, mid-page), flush, discard,
// multi-queue and multi-page rings, both ABIs, reconnect, and the raw escape hatch.
import { setTimeout as sleep } from 'node:timers/promises';
import * as fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlkifOp, BlkifStatus } from '../../src/blkif/constants';
import { pattern } from '../helpers/pattern';
import { rig } from '../helpers/sim-rig';
import { until } from '../helpers/wait';
import { rejects } from './util';

test('handshake: order-0 single ring keys, info read back, Connected', async () => {
  const h = await rig();
  const xs = h.store.connect(0);
  const f = h.paths.frontend;
  assert.ok(/^\d+$/.test(await xs.read(`${f}/ring-ref`)));
  assert.ok(/^\d+$/.test(await xs.read(`${f}/event-channel`)));
  assert.is(await xs.read(`${f}/protocol`), 'x86_64-abi');
  assert.is(await xs.tryRead(`${f}/ring-page-order`), undefined);
  assert.is(await xs.read(`${f}/state`), '4');
  assert.is(await xs.read(`${h.paths.backend}/state`), '4');
  assert.is(h.front.info.sectors, 8 * 2048);
  assert.is(h.front.info.sectorSize, 512);
  assert.is(h.front.info.indirectSegments, 32, 'min(backend 256, frontend default 32)');
  assert.ok(h.front.info.flush);
  await h.close();
});

test('Connected only after hotplug-status=connected; a frontend writing no protocol key; order-4 ring', async () => {
  const h = await rig({ hotplug: false, connect: false, front: { protocol: null, maxRingPageOrder: 4 } });
  const xs = h.store.connect(0);
  const connecting = h.front.connect();
  await until('frontend Initialised', async () => (await xs.tryRead(`${h.paths.frontend}/state`)) === '3', 3000);
  await sleep(50);
  assert.is(await xs.read(`${h.paths.backend}/state`), '2', 'still InitWait without the hotplug verdict');
  assert.is(
    await xs.read(`${h.paths.frontend}/protocol`),
    'x86_64-abi',
    "the frontend wrote none: libxl's value for a PV guest stays",
  );
  assert.is(await xs.read(`${h.paths.frontend}/ring-page-order`), '4');
  await h.toolstack.hotplugConnected(h.paths);
  await connecting;
  assert.is(h.front.info.protocol, 'x86_64-abi');
  assert.is(h.front.info.ringPageOrder, 4);
  await h.front.write(7, pattern(65536, 7));
  assert.equal(await h.front.read(7, 65536), pattern(65536, 7));
  await h.close();
});

test('verified I/O: direct, indirect, mid-page, flush, discard', async () => {
  const h = await rig();
  const a = pattern(4096, 1);
  await h.front.write(0, a);
  assert.equal(await h.front.read(0, 4096), a);
  const big = pattern(1024 * 128, 2); // 32 pages: indirect
  await h.front.write(100, big, { firstSect: 3 });
  assert.equal(await h.front.read(100, big.length), big);
  assert.equal(await h.front.read(100, big.length, { firstSect: 5 }), big);
  assert.ok(h.front.stats.indirect >= 2);
  const huge = pattern(1024 * 1024, 3); // split into several indirect requests
  await h.front.write(4096, huge);
  await h.front.flush();
  const onDisk = fs.readFileSync(h.imagePath).subarray(4096 * 512, 4096 * 512 + huge.length);
  assert.ok(Buffer.from(huge).equals(onDisk), 'the image holds what was written');
  if (h.front.info.discard) {
    await h.front.discard(4096, 2048);
    assert.equal(await h.front.read(4096, 4096), new Uint8Array(4096), 'discarded range reads zero');
  }
  // Many in flight at once, checked against a model.
  const ops: Promise<void>[] = [];
  for (let i = 0; i < 64; i++) ops.push(h.front.write(8192 + i * 16, pattern(8192, 100 + i)));
  await Promise.all(ops);
  for (let i = 0; i < 64; i++) assert.equal(await h.front.read(8192 + i * 16, 8192), pattern(8192, 100 + i));
  await h.close();
});

test('multi-queue, multi-page rings, x86_32 ABI', async () => {
  const h = await rig({
    front: { maxQueues: 3, maxRingPageOrder: 2, protocol: 'x86_32-abi', maxIndirectSegments: 256 },
  });
  const xs = h.store.connect(0);
  const f = h.paths.frontend;
  assert.is(await xs.read(`${f}/multi-queue-num-queues`), '3');
  assert.is(await xs.read(`${f}/ring-page-order`), '2');
  assert.is(await xs.read(`${f}/protocol`), 'x86_32-abi');
  for (let q = 0; q < 3; q++) {
    for (let i = 0; i < 4; i++) assert.ok(/^\d+$/.test(await xs.read(`${f}/queue-${q}/ring-ref${i}`)));
    assert.ok(/^\d+$/.test(await xs.read(`${f}/queue-${q}/event-channel`)));
  }
  assert.is(await xs.tryRead(`${f}/ring-ref`), undefined);
  assert.is(h.front.info.queues, 3);
  assert.is(h.front.info.indirectSegments, 256);
  const writes: Promise<void>[] = [];
  for (let i = 0; i < 30; i++) writes.push(h.front.write(i * 64, pattern(32768, i), { queue: i % 3 }));
  await Promise.all(writes);
  for (let i = 0; i < 30; i++)
    assert.equal(await h.front.read(i * 64, 32768, { queue: (i + 1) % 3 }), pattern(32768, i));
  await h.close();
});

test('reconnect: Closing → Closed → Initialising → Connected again, data intact', async () => {
  const h = await rig();
  await h.front.write(10, pattern(8192, 9));
  await h.front.reconnect();
  assert.is(h.front.stats.reconnects, 1);
  assert.is(h.device.stats().connects, 2);
  assert.equal(await h.front.read(10, 8192), pattern(8192, 9));
  await h.close();
});

test('raw: an unknown operation in a slot gets EOPNOTSUPP with its id; nothing else is written', async () => {
  const h = await rig();
  const id = 0xdead0001n;
  const idx = h.front.raw.putRequest({ kind: 'unknown', operation: 0x77, id });
  h.front.raw.push();
  await until('the response', () => h.front.raw.unmatched().length > 0, 3000);
  const rsp = h.front.raw.unmatched()[0]!;
  assert.is(rsp.id, id);
  assert.is(rsp.status, BlkifStatus.EOPNOTSUPP);
  const slot = h.front.raw.slot(idx);
  assert.is(slot[8], 0x77, 'operation echoed');
  // The device keeps working.
  await h.front.write(0, pattern(512, 4));
  assert.equal(await h.front.read(0, 512), pattern(512, 4));
  void BlkifOp;
  await h.close();
});

test('removal by the toolstack: Closing → Closed within the libxl timeout, dirs removed', async () => {
  const h = await rig();
  await h.front.write(0, pattern(4096, 5));
  const r = await h.toolstack.removeVbd(h.paths, { timeoutMs: 10_000 });
  assert.ok(r.closed, 'backend reached Closed');
  assert.ok(r.waitedMs < 10_000);
  await h.close();
  await rejects(() => h.front.read(0, 512), /not connected/);
});

test.run();
