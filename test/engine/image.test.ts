// The engine on a real image file: data lands in the file, FLUSH reaches fdatasync, DISCARD
// punches a hole (fewer allocated blocks, same size, zeros read back), never zero-fills.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlkifOp } from '../../src/blkif/constants';
import type { BlockFile, IoCallback } from '../../src/engine/block-file';
import { createImage } from '../../src/image/create';
import { Image } from '../../src/image/image';
import { LIMITS, Rig, pattern, rwReq } from './fixture';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'afsfile-engine-'));
const SIZE = 4 << 20;

function image(name: string): Image {
  const p = path.join(dir, name);
  createImage(p, { size: SIZE, preallocate: false, quiet: true });
  return Image.open(p, { readOnly: false });
}

/** Counts fsyncs reaching the image. */
function counting(img: Image): BlockFile & { fsyncs: number } {
  const f = {
    fsyncs: 0,
    size: img.size,
    readOnly: img.readOnly,
    canDiscard: img.canDiscard,
    read: (b: Uint8Array, o: number, cb: IoCallback) => img.read(b, o, cb),
    write: (b: Uint8Array, o: number, cb: IoCallback) => img.write(b, o, cb),
    fsync: (cb: IoCallback) => {
      f.fsyncs++;
      img.fsync(cb);
    },
    discard: (o: number, l: number, cb: IoCallback) => img.discard(o, l, cb),
  };
  return f;
}

const limits = { ...LIMITS, sectors: BigInt(SIZE / 512) };

test('write, flush and read back through a real file', async () => {
  const img = image('a.img');
  const f = counting(img);
  const rig = new Rig(f, { limits });
  const gs = Array.from({ length: 11 }, (_, i) => rig.grants.grant(pattern(i)));
  rig.submit(rwReq(BlkifOp.WRITE, 1n, 2048n, gs), rwReq(BlkifOp.FLUSH_DISKCACHE, 2n, 0n, []));
  const rs = await rig.collect(2);
  assert.equal(rs.map((r) => r.status), [0, 0]);
  assert.is(f.fsyncs, 1, 'FLUSH reached fdatasync');
  const onDisk = fs.readFileSync(img.path).subarray(2048 * 512, 2048 * 512 + 11 * 4096);
  for (let i = 0; i < 11; i++) assert.equal(new Uint8Array(onDisk.subarray(i * 4096, (i + 1) * 4096)), pattern(i));
  const back = rig.grants.grant();
  rig.submit(rwReq(BlkifOp.READ, 3n, 2048n + 8n * 5n, [back]));
  await rig.collect(3);
  assert.equal(rig.grants.page(back), pattern(5));
  rig.engine.close();
  img.close();
});

test('discard punches a hole: fewer blocks, same size, zeros; refused when not advertised', async () => {
  const img = image('b.img');
  if (!img.canDiscard) {
    console.log(`  (skipped: ${dir} cannot punch holes)`);
    img.close();
    return;
  }
  fs.writeFileSync(img.path, Buffer.alloc(SIZE, 0x5a));
  const before = fs.statSync(img.path).blocks;
  const rig = new Rig(img, { limits });
  rig.submit({ kind: 'discard', operation: BlkifOp.DISCARD, flag: 0, handle: 0, id: 1n, sectorNumber: 2048n, nrSectors: 2048n });
  const rs = await rig.collect(1);
  assert.is(rs[0].status, 0);
  const st = fs.statSync(img.path);
  assert.is(st.size, SIZE);
  assert.ok(st.blocks <= before - 2048, `blocks ${before} → ${st.blocks}`);
  const data = fs.readFileSync(img.path);
  assert.ok(data.subarray(1 << 20, 2 << 20).every((x) => x === 0));
  assert.is(data[(1 << 20) - 1], 0x5a);
  assert.is(data[2 << 20], 0x5a);
  const rig2 = new Rig(img, { limits: { ...limits, discard: false } });
  rig2.submit({ kind: 'discard', operation: BlkifOp.DISCARD, flag: 0, handle: 0, id: 2n, sectorNumber: 0n, nrSectors: 2048n });
  assert.is((await rig2.collect(1))[0].status, -2);
  assert.is(fs.readFileSync(img.path)[0], 0x5a, 'nothing discarded');
  img.close();
});

test('readv: several buffers in file order in one call; past the end a short read goes on, then EIO', async () => {
  const img = image('readv.img');
  // A counter per 32-bit word: no two places of the 12 KiB alike (order mistakes show).
  const data = new Uint8Array(Uint32Array.from({ length: 3072 }, (_, i) => 0x5a000000 + i).buffer);
  await new Promise<void>((res, rej) => img.write(data, SIZE - 12288, (e) => (e ? rej(e) : res())));
  const views = [new Uint8Array(4096), new Uint8Array(1024), new Uint8Array(7168)];
  const readv = (v: Uint8Array[], at: number) =>
    new Promise<NodeJS.ErrnoException | null>((res) => img.readv(v, at, res));
  assert.is(await readv(views, SIZE - 12288), null);
  assert.equal(views[0], data.subarray(0, 4096));
  assert.equal(views[1], data.subarray(4096, 5120));
  assert.equal(views[2], data.subarray(5120));
  // 8 KiB before the end, 12 KiB asked: the first 8 KiB arrive (across the views), then EIO.
  const late = [new Uint8Array(6144), new Uint8Array(6144)];
  const err = await readv(late, SIZE - 8192);
  assert.is(err?.code, 'EIO');
  assert.equal(late[0], data.subarray(4096, 10240));
  assert.equal(late[1].subarray(0, 2048), data.subarray(10240));
  img.close();
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
test.run();
