// The simulated blkfront when things go wrong: an error answer (and blkfront-style retry),
// EOPNOTSUPP turning a feature off, a hostile req_prod through the raw hatch, a read-only
// device, and the demo model catching a corrupted image.
import * as fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlkifStatus } from '../../src/blkif/constants';
import { DiskModel } from '../../src/demo/model';
import { Image } from '../../src/image/image';
import { BlkfrontIoError } from '../../src/sim/blkfront';
import type { DeviceImage } from '../../src/worker/device/device';
import { pattern } from '../helpers/pattern';
import { rig } from '../helpers/sim-rig';
import { until } from '../helpers/wait';
import { rejects } from './util';

/** An image whose next `failReads` reads fail with a permanent error. */
function flaky(failReads: { n: number }) {
  return (path: string, readOnly: boolean): DeviceImage => {
    const img = Image.open(path, { readOnly });
    return {
      path, size: img.size, readOnly: img.readOnly, canDiscard: img.canDiscard,
      read: (buf, off, cb) => (failReads.n-- > 0 ? setImmediate(() => cb(Object.assign(new Error('injected'), { code: 'EFAULT' }))) : img.read(buf, off, cb)),
      write: (buf, off, cb) => img.write(buf, off, cb),
      fsync: (cb) => img.fsync(cb),
      discard: (off, len, cb) => img.discard(off, len, cb),
      close: () => img.close(),
    };
  };
}

test('an error answer fails the I/O; with retries blkfront re-submits and succeeds', async () => {
  const fails = { n: 0 };
  const h = await rig({ device: { openImage: flaky(fails) }, front: { retries: 2 } });
  await h.front.write(0, pattern(4096, 1));
  fails.n = 1;
  assert.equal(await h.front.read(0, 4096), pattern(4096, 1), 'retried once, then read');
  assert.is(h.front.stats.retries, 1);
  fails.n = 3;
  const err = await rejects(() => h.front.read(0, 4096));
  assert.instance(err, BlkfrontIoError);
  assert.is((err as BlkfrontIoError).status, BlkifStatus.ERROR);
  assert.is(h.front.stats.retries, 3);
  await h.close();
});

test('a read-only device: info says so, the frontend refuses writes, the backend answers error to raw ones', async () => {
  const h = await rig({ vbd: { access: 'ro' } });
  assert.ok(h.front.info.readOnly);
  assert.not.ok(h.front.info.discard);
  await rejects(() => h.front.write(0, pattern(512, 1)), /read-only/);
  const page = h.front.raw.grantPage(true, pattern(4096, 2));
  const id = 0xbeef0001n;
  h.front.raw.putRequest({ kind: 'rw', operation: 1, innerOperation: 1, nrSegments: 1, handle: 0, id, sectorNumber: 0n, segments: [{ gref: page.gref, firstSect: 0, lastSect: 7 }], indirectGrefs: [] });
  h.front.raw.push();
  await until('the answer', () => h.front.raw.unmatched().length > 0, 3000);
  assert.is(h.front.raw.unmatched()[0]!.status, BlkifStatus.ERROR);
  assert.equal(new Uint8Array(fs.readFileSync(h.imagePath).subarray(0, 4096)), new Uint8Array(4096), 'nothing written');
  await h.close();
});

test('raw: req_prod more than a ring ahead gets the frontend disconnected, with a reason', async () => {
  const h = await rig();
  const ring = h.front.raw.ring();
  h.front.raw.setReqProd(ring.reqProd + ring.size + 5);
  await until('the backend to leave Connected', async () => (await h.store.connect(0).tryRead(`${h.paths.backend}/state`)) !== '4', 3000);
  assert.is(await h.store.connect(0).read(`${h.paths.backend}/afsfile-status`), 'error');
  assert.match(await h.store.connect(0).read(`${h.paths.backend}/afsfile-error`), /broke the ring/);
  assert.ok(h.warnings.some((w) => /broke the ring/.test(w)));
  await h.close();
});

test('the demo model catches a corrupted sector and zeros where data was expected', async () => {
  const h = await rig();
  const model = new DiskModel(h.front.info.sectors, true);
  await h.front.write(64, model.writeData(64, 16));
  assert.is(model.check(64, await h.front.read(64, 16 * 512)), 0);
  await h.front.flush();
  const fd = fs.openSync(h.imagePath, 'r+');
  fs.writeSync(fd, Buffer.from([0xff]), 0, 1, 70 * 512 + 3);
  fs.closeSync(fd);
  const seen: number[] = [];
  assert.is(model.check(64, await h.front.read(64, 16 * 512), (s) => seen.push(s)), 1);
  assert.equal(seen, [70]);
  assert.is(model.check(0, new Uint8Array(64 * 512)), 0, 'never-written sectors are zeros');
  assert.is(model.check(64, new Uint8Array(512)), 1, 'zeros where data was written');
  await h.close();
});

test('reconnect with requests in flight: blkif_recover re-issues them on the new ring', async () => {
  const slowImage = (path: string, readOnly: boolean): DeviceImage => {
    const img = Image.open(path, { readOnly });
    const later = (fn: () => void) => setTimeout(fn, 150);
    return {
      path, size: img.size, readOnly: img.readOnly, canDiscard: img.canDiscard,
      read: (buf, off, cb) => later(() => img.read(buf, off, cb)),
      write: (buf, off, cb) => later(() => img.write(buf, off, cb)),
      fsync: (cb) => img.fsync(cb),
      discard: (off, len, cb) => img.discard(off, len, cb),
      close: () => img.close(),
    };
  };
  const h = await rig({ device: { openImage: slowImage } });
  await h.front.write(0, pattern(65536, 1));
  const writes = Array.from({ length: 6 }, (_, i) => h.front.write(1000 + i * 128, pattern(65536, 20 + i)));
  const read = h.front.read(0, 65536);
  await until('requests in flight', () => h.front.raw.ring().reqProd !== h.front.raw.ring().rspProd, 2000);
  const before = h.front.stats.requests;
  await h.front.reconnect();
  await Promise.all(writes);
  assert.ok(h.front.stats.requests > before, 'in-flight requests were issued again');
  assert.equal(await read, pattern(65536, 1));
  for (let i = 0; i < 6; i++) assert.equal(await h.front.read(1000 + i * 128, 65536), pattern(65536, 20 + i));
  assert.is(h.front.stats.reconnects, 1);
  await h.close();
});

test('guest memory too small for the queue depth: requests wait for pages instead of failing', async () => {
  const h = await rig({ guestPages: 160, front: { maxIndirectSegments: 128, queueDepth: 8 } });
  const writes = Array.from({ length: 8 }, (_, i) => h.front.write(i * 1024, pattern(512 * 1024, i)));
  await Promise.all(writes);
  for (let i = 0; i < 8; i++) assert.equal(await h.front.read(i * 1024, 512 * 1024), pattern(512 * 1024, i));
  await h.close();
  // A request needing more pages than the guest has fails cleanly; the device keeps working.
  const small = await rig({ guestPages: 64, front: { maxIndirectSegments: 128 } });
  await rejects(() => small.front.write(0, pattern(512 * 1024, 9)), /out of memory/);
  await small.front.write(0, pattern(4096, 10));
  assert.equal(await small.front.read(0, 4096), pattern(4096, 10));
  await small.close();
});

test.run();
