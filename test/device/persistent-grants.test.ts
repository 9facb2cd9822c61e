// Persistent grants (blkif.h feature-persistent) end to end over the simulator: the Device
// offers them only behind the setting, the simulated blkfront (reusing its grants as Linux
// xen-blkfront does) negotiates them, data is right both ways, each grant is mapped once, the
// per-device and per-process limits hold against a frontend offering ever new grefs, read-only
// or bogus grants fall back to grant copy, and everything is unmapped at disconnect.
import * as fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlkifOp } from '../../src/blkif/constants';
import { Device } from '../../src/worker/device/device';
import type { IoCallback } from '../../src/engine/block-file';
import { Image } from '../../src/image/image';
import { PersistentBudget, persistentFromEnv, DEFAULT_MAX_PERSISTENT_GRANTS } from '../../src/engine/persistent-grants';
import { pattern } from '../helpers/pattern';
import { rig, type Rig, type RigOptions } from '../helpers/sim-rig';
import { until } from '../helpers/wait';

function persistentRig(max = DEFAULT_MAX_PERSISTENT_GRANTS, more: RigOptions = {}, budget?: PersistentBudget) {
  return rig({
    ...more,
    device: {
      engine: { fsyncIntervalMs: 0, persistentGrants: max, ...(budget ? { persistentBudget: budget } : {}) },
      ...more.device,
    },
  });
}

/** A one-page WRITE request with gref at sector. */
function write1(id: bigint, sector: number, gref: number) {
  return {
    kind: 'rw' as const, operation: BlkifOp.WRITE, innerOperation: BlkifOp.WRITE, handle: 0, id, nrSegments: 1,
    sectorNumber: BigInt(sector), segments: [{ gref, firstSect: 0, lastSect: 7 }], indirectGrefs: [],
  };
}

test('AFSFILE_PERSISTENT: off unless a positive number; 1 is blkback\'s limit', () => {
  assert.is(persistentFromEnv(undefined), 0);
  assert.is(persistentFromEnv(''), 0);
  assert.is(persistentFromEnv('0'), 0);
  assert.is(persistentFromEnv('yes'), 0);
  assert.is(persistentFromEnv('-3'), 0);
  assert.is(persistentFromEnv('1'), 1056);
  assert.is(persistentFromEnv('64'), 64);
});

test('off by default: not offered, the frontend keeps granting per request, nothing mapped', async () => {
  const r = await rig();
  assert.is(await r.dom0.tryRead(`${r.paths.backend}/feature-persistent`), undefined);
  assert.is(await r.dom0.read(`${r.paths.frontend}/feature-persistent`), '1', 'blkfront offers it');
  assert.not.ok(r.front.info.persistent);
  const data = pattern(128 * 1024, 3);
  await r.front.write(8, data);
  assert.equal(await r.front.read(8, data.length), data);
  assert.is(r.platform.grants.grantMaps, 0);
  assert.is(r.device.stats().engine!.persistentGrants, undefined);
  await r.close();
});

test('on: negotiated, data right both ways, each grant mapped once and reused', async () => {
  const r = await persistentRig();
  assert.is(await r.dom0.read(`${r.paths.backend}/feature-persistent`), '1');
  assert.ok(r.front.info.persistent);
  const g = r.platform.grants;
  const copiedBefore = g.segmentsCopied;
  for (let round = 0; round < 4; round++) {
    const data = pattern(256 * 1024, 10 + round);
    await Promise.all([
      r.front.write(round * 1024, data.subarray(0, 128 * 1024)),
      r.front.write(round * 1024 + 256, data.subarray(128 * 1024)),
    ]);
    assert.equal(await r.front.read(round * 1024, data.length), data);
    const file = fs.readFileSync(r.imagePath).subarray(round * 1024 * 512, round * 1024 * 512 + data.length);
    assert.equal(new Uint8Array(file), data, `round ${round}: in the image`);
  }
  await r.front.flush();
  assert.ok(r.files[0].fsyncs >= 1, 'FLUSH still reaches fsync');
  const st = r.device.stats().engine!.persistentGrants!;
  assert.ok(st.hits > 0, 'segments went through kept mappings');
  assert.ok(st.direct >= 4, 'reads went straight into the mapped pages');
  assert.is(g.segmentsCopied, copiedBefore, 'no grant copy at all');
  // Every grant the frontend ever made is mapped at most once.
  assert.is(g.grantMaps, r.front.stats.persistentGrants);
  assert.is(st.mapped, g.grantsMapped);
  await r.close();
  assert.is(g.grantsMapped, 0, 'all unmapped at disconnect');
});

test('the per-device limit: grants beyond it are grant-copied, data still right', async () => {
  const r = await persistentRig(8);
  const g = r.platform.grants;
  const data = pattern(512 * 1024, 21);
  await r.front.write(0, data);
  assert.equal(await r.front.read(0, data.length), data);
  const st = r.device.stats().engine!.persistentGrants!;
  assert.is(st.mapped, 8);
  assert.is(g.grantsMapped, 8);
  assert.ok(st.overLimit > 0);
  assert.ok(g.segmentsCopied > 0, 'the rest by grant copy');
  await r.close();
  assert.is(g.grantsMapped, 0);
});

test('the process budget is shared and strict; given back at disconnect', async () => {
  const budget = new PersistentBudget(5);
  const r = await persistentRig(1056, {}, budget);
  const data = pattern(256 * 1024, 22);
  await r.front.write(0, data);
  assert.equal(await r.front.read(0, data.length), data);
  assert.is(budget.pagesInUse, 5);
  assert.is(r.device.stats().engine!.persistentGrants!.mapped, 5);
  await r.close();
  assert.is(budget.pagesInUse, 0);
});

test('a hostile frontend: new grefs stay within the limit; read-only, bad grants copy or fail alone', async () => {
  const r = await persistentRig(16);
  const g = r.platform.grants;
  const q = r.front.raw;
  // 40 writes of one page each, every one with a fresh (read-only) grant: not mappable writable.
  let id = 5000n;
  for (let i = 0; i < 40; i++) {
    const page = q.grantPage(i % 2 === 0, pattern(4096, 100 + i));
    q.putRequest(write1(id++, i * 8, page.gref));
    if (i % 8 === 7) {
      q.push();
      await until(`answers up to ${i}`, () => q.unmatched().length >= i + 1, 3000);
    }
  }
  // A grant that does not exist: its request fails, nothing else.
  q.putRequest(write1(id++, 0, 4000));
  q.push();
  await until('every answer', () => q.unmatched().length >= 41, 3000);
  const answers = q.unmatched();
  assert.ok(answers.slice(0, 40).every((a) => a.status === 0), 'every good write answered OKAY, in order');
  assert.equal(answers.map((a) => a.id), Array.from({ length: 41 }, (_, i) => 5000n + BigInt(i)));
  assert.is(answers[40].status, -1);
  const img = fs.readFileSync(r.imagePath);
  for (let i = 0; i < 40; i++) {
    assert.equal(new Uint8Array(img.subarray(i * 4096, (i + 1) * 4096)), pattern(4096, 100 + i), `page ${i}`);
  }
  const st = r.device.stats().engine!.persistentGrants!;
  assert.ok(st.mapped <= 16 && g.grantsMapped <= 16, `mapped ${st.mapped}`);
  // Half the grants are read-only: refused (not mapped) until the writable half fills the limit.
  assert.ok(st.mapFailures >= 10, `the read-only grants were refused, not mapped (${st.mapFailures})`);
  assert.ok(st.overLimit > 0, 'past the limit nothing is tried');
  await r.close();
  assert.is(g.grantsMapped, 0);
});

test('reconnect: unmapped with the old rings, negotiated again, data right', async () => {
  const r = await persistentRig();
  const g = r.platform.grants;
  const a = pattern(64 * 1024, 31);
  await r.front.write(100, a);
  assert.ok(g.grantsMapped > 0);
  await r.front.reconnect();
  assert.ok(r.front.info.persistent);
  const b = pattern(64 * 1024, 32);
  await r.front.write(300, b);
  assert.equal(await r.front.read(100, a.length), a);
  assert.equal(await r.front.read(300, b.length), b);
  assert.ok(g.grantsMapped <= r.front.stats.persistentGrants);
  await r.close();
  assert.is(g.grantsMapped, 0);
});

test('a read into the mappings in flight at disconnect: unmapped only once it is done', async () => {
  let held: Array<() => void> | null = null;
  const r = await persistentRig(1056, {
    device: {
      closeDeadlineMs: 200,
      openImage: (p: string, ro: boolean) => {
        const img = Image.open(p, { readOnly: ro });
        const f = {
          path: img.path, size: img.size, readOnly: img.readOnly, canDiscard: img.canDiscard,
          read: (b: Uint8Array, o: number, cb: IoCallback) => img.read(b, o, cb),
          readv: (v: Uint8Array[], o: number, cb: IoCallback) => {
            if (held) held.push(() => img.readv(v, o, cb));
            else img.readv(v, o, cb);
          },
          write: (b: Uint8Array, o: number, cb: IoCallback) => img.write(b, o, cb),
          fsync: (cb: IoCallback) => img.fsync(cb),
          discard: (o: number, l: number, cb: IoCallback) => img.discard(o, l, cb),
          close: () => img.close(),
        };
        return f;
      },
    },
  });
  const g = r.platform.grants;
  const a = pattern(32 * 1024, 51);
  await r.front.write(64, a);
  assert.equal(await r.front.read(64, a.length), a);
  assert.ok((r.device.stats().engine!.persistentGrants!.direct) > 0);
  held = [];
  const pending = r.front.read(64, a.length);
  await until('a read into the mappings is held', () => held!.length > 0, 3000);
  const reconnected = r.front.reconnect();
  await until('the old rings are gone', () => r.device.stats().queues === 0 || r.device.stats().connects > 1, 5000);
  assert.ok(g.grantsMapped > 0, 'still mapped while the read is in flight');
  const release = held;
  held = null;
  for (const go of release) go();
  await reconnected;
  assert.equal(await pending, a, 'the read was issued again on the new rings');
  const b = pattern(32 * 1024, 52);
  await r.front.write(200, b);
  assert.equal(await r.front.read(200, b.length), b);
  assert.ok(r.device.stats().engine!.persistentGrants!.mapped <= r.front.stats.persistentGrants);
  await r.close();
  assert.is(g.grantsMapped, 0);
});

test('hold-and-retry: a read straight into the mappings that fails EACCES twice is retried, then right', async () => {
  let failures = 0;
  const r = await persistentRig(1056, {
    device: {
      openImage: (p: string, ro: boolean) => {
        const img = Image.open(p, { readOnly: ro });
        return {
          path: img.path, size: img.size, readOnly: img.readOnly, canDiscard: img.canDiscard,
          read: (b: Uint8Array, o: number, cb: IoCallback) => img.read(b, o, cb),
          readv: (v: Uint8Array[], o: number, cb: IoCallback) => {
            if (failures > 0) {
              failures--;
              v[0].fill(0xee); // what a failed read may leave behind
              return setImmediate(() => cb(Object.assign(new Error('EACCES'), { code: 'EACCES' })));
            }
            img.readv(v, o, cb);
          },
          write: (b: Uint8Array, o: number, cb: IoCallback) => img.write(b, o, cb),
          fsync: (cb: IoCallback) => img.fsync(cb),
          discard: (o: number, l: number, cb: IoCallback) => img.discard(o, l, cb),
          close: () => img.close(),
        };
      },
    },
  });
  const a = pattern(16 * 1024, 61);
  await r.front.write(8, a);
  assert.equal(await r.front.read(8, a.length), a);
  failures = 2;
  assert.equal(await r.front.read(8, a.length), a, 'held, retried, then the right data');
  assert.is(failures, 0);
  assert.ok(r.device.stats().engine!.retries >= 2);
  await r.close();
});

test('a frontend that does not offer it: the backend offers, nothing is mapped', async () => {
  const r = await persistentRig(1056, { front: { persistent: false } });
  assert.is(await r.dom0.read(`${r.paths.backend}/feature-persistent`), '1');
  assert.not.ok(r.front.info.persistent);
  const data = pattern(64 * 1024, 41);
  await r.front.write(0, data);
  assert.equal(await r.front.read(0, data.length), data);
  assert.is(r.platform.grants.grantMaps, 0);
  await r.close();
});

/** A new worker adopts the Connected device (quiesce, new platform), with `max` persistent grants. */
async function restart(r: Rig, max: number) {
  r.files[0].readHang = true;
  const d = pattern(8192, 5);
  const pending = r.front.read(16, 8192);
  await until('read in flight', () => (r.device.stats().engine?.inFlight ?? 0) > 0, 3000);
  await r.device.quiesce();
  assert.is(await r.dom0.read(`${r.paths.backend}/state`), '4');
  r.platform.close();
  const platform2 = r.hv.platform();
  const dev2 = new Device(r.dom0, platform2, r.paths.backend, {
    engine: { fsyncIntervalMs: 0, persistentGrants: max },
    warn: () => undefined,
  });
  await dev2.start();
  assert.equal(await pending, d, 'the unanswered read was replayed by the new worker');
  const e = pattern(64 * 1024, 6);
  await r.front.write(100, e);
  assert.equal(await r.front.read(100, e.length), e);
  return {
    platform2, dev2,
    close: async () => {
      await r.front.close();
      await dev2.quiesce();
      platform2.close();
      r.hv.close();
      fs.rmSync(r.dir, { recursive: true, force: true });
    },
  };
}

test('worker restart, persistent then off: the frontend\'s mode is kept (copied, not mapped), replayed', async () => {
  const r = await persistentRig(1056, { device: { closeDeadlineMs: 200 } });
  await r.front.write(16, pattern(8192, 5));
  assert.ok(r.front.info.persistent);
  const s = await restart(r, 0);
  assert.is(await r.dom0.read(`${r.paths.backend}/feature-persistent`), '1', 'what the frontend saw stays');
  assert.is(s.platform2.grants.grantMaps, 0);
  await s.close();
});

test('worker restart, off then persistent: no mapping of grants the frontend ends per request', async () => {
  const r = await rig({ device: { closeDeadlineMs: 200, engine: { fsyncIntervalMs: 0 } } });
  await r.front.write(16, pattern(8192, 5));
  assert.not.ok(r.front.info.persistent);
  const s = await restart(r, 1056);
  assert.is(await r.dom0.tryRead(`${r.paths.backend}/feature-persistent`), undefined);
  assert.is(s.platform2.grants.grantMaps, 0, 'nothing mapped');
  assert.ok(s.platform2.grants.segmentsCopied > 0);
  await s.close();
});

test('worker restart, persistent both times: mapped again by the new worker, replayed', async () => {
  const r = await persistentRig(1056, { device: { closeDeadlineMs: 200 } });
  await r.front.write(16, pattern(8192, 5));
  const s = await restart(r, 1056);
  assert.ok(s.platform2.grants.grantMaps > 0);
  await s.close();
  assert.is(s.platform2.grants.grantsMapped, 0);
});

test.run();
