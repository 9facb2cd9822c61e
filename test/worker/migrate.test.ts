// A migration on one host, in libxl's order (tools/libs/light/libxl_create.c, tools/xl/
// xl_migrate.c): the destination `<name>--incoming`, the same VM, gets its disk while the source
// still holds it; its guest connects after the stream; xl destroys the source only after that.
// Two device processes of one worker (real xenstored, simulated guests across processes): the
// destination attaches without the image lock and serves nothing until the source has drained,
// fsynced and closed; a source that never lets go fails the destination's connect after
// migration-lock-wait; an aborted migration leaves the source its lock.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimBlkfront } from '../../src/sim/blkfront';
import { SimGuest } from '../../src/sim/guest';
import type { VbdPaths } from '../../src/sim/toolstack';
import { hotplugAdd } from '../helpers/hotplug-add';
import { alive } from '../helpers/proc-tree';
import { setup, teardown } from '../helpers/hooks';
import { pattern } from '../helpers/pattern';
import { until } from '../helpers/wait';
import { type WorkerRig, startWorkerRig } from '../helpers/worker-rig';
import { sparseFile } from '../helpers/temp';

let rig: WorkerRig;
const guests: SimGuest[] = [];
const WAIT_S = 3;

setup(test, async () => {
  rig = await startWorkerRig('afsfile-migrate-', { config: `migration-lock-wait = ${WAIT_S}s\n` });
  fs.mkdirSync(path.join(rig.dir, 'sim'), { recursive: true });
});

teardown(test, async () => {
  for (const g of guests) g.close();
  await rig?.close();
});

function image(name: string): string {
  return sparseFile(rig.dir, name, 8 << 20);
}

/** A domain as libxl makes it, with its VM path, a simulated guest, and a disk. */
async function domain(domid: number, name: string, vm: string, img: string): Promise<{ p: VbdPaths; g: SimGuest }> {
  await rig.ts.createDomain(domid, name);
  await rig.c.write(`/local/domain/${domid}/vm`, vm);
  const g = new SimGuest({ domid, dir: path.join(rig.dir, 'sim'), pages: 1024 });
  await g.listen();
  guests.push(g);
  const p = await rig.ts.addVbd({ domid, target: img });
  return { p, g };
}

/** The real block-afsfile add (its own sharing check first, then the worker's verdict). */
async function opened(p: VbdPaths): Promise<string> {
  const r = await hotplugAdd(rig, p.backend);
  if (r.status === 0) return (await rig.c.tryRead(`${p.backend}/afsfile-status`)) ?? 'no afsfile-status';
  return `${(await rig.c.tryRead(`${p.backend}/hotplug-status`)) ?? '?'}: ${r.output}`;
}

type DevFile = { pid: number; lock?: { state: string } };
const devFile = (p: VbdPaths): DevFile | undefined => {
  try {
    const file = path.join(rig.runDir, `status/dev-${p.domid}-${p.devid}.json`);
    return JSON.parse(fs.readFileSync(file, 'utf8')) as DevFile;
  } catch {
    return undefined;
  }
};
const lockState = (p: VbdPaths): string | undefined => devFile(p)?.lock?.state;
test('the destination attaches without the lock and connects only after the source has closed', async () => {
  const img = image('m.img');
  const src = await domain(60, 'vm1', '/vm/0000-1', img);
  assert.is(await opened(src.p), 'opened');
  const fs1 = new SimBlkfront({ xs: rig.c, guest: src.g, devid: src.p.devid });
  await fs1.connect();
  await fs1.write(0, pattern(65536, 1));
  await fs1.flush();

  const dst = await domain(61, 'vm1--incoming', '/vm/0000-1', img);
  assert.is(await opened(dst.p), 'opened', 'the destination\'s attach is not refused');
  assert.is(await until('its lock state', () => lockState(dst.p)), 'deferred');
  const fd = new SimBlkfront({ xs: rig.c, guest: dst.g, devid: dst.p.devid, timeoutMs: 20_000 });
  const connecting = fd.connect();
  await until('destination frontend Initialised',
    async () => (await rig.c.tryRead(`${dst.p.frontend}/state`)) === '3');
  // The source still drains: its last write lands before the destination may serve anything.
  await sleep(500);
  assert.is.not(await rig.c.read(`${dst.p.backend}/state`), '4', 'not Connected while the source holds the lock');
  await fs1.write(128, pattern(65536, 2));
  await fs1.flush();
  const srcPid = devFile(src.p)!.pid;
  const t0 = Date.now();
  assert.ok((await rig.ts.removeVbd(src.p, { timeoutMs: 10_000 })).closed);
  await rig.ts.destroy(src.p);
  const info = await connecting;
  const waited = Date.now() - t0;
  assert.is(info.sectors, (8 << 20) / 512);
  await until('the destination\'s lock held', () => lockState(dst.p) === 'held');
  // Both disks may be served by one device host (isolation): the source's device ended, its
  // process may serve on.
  assert.ok(!alive(srcPid) || devFile(src.p) === undefined, 'the source\'s device had ended');
  assert.equal(await fd.read(0, 65536), pattern(65536, 1));
  assert.equal(await fd.read(128, 65536), pattern(65536, 2), 'the source\'s last write is there');
  await fd.write(256, pattern(4096, 3));
  await fd.flush();
  process.stdout.write(`destination connected ${waited} ms after the source's removal began\n`);
  assert.ok((await rig.ts.removeVbd(dst.p, { timeoutMs: 10_000 })).closed);
});

test('a source that never lets go fails the destination\'s connect; the aborted migration leaves ' +
  'the source its lock', async () => {
  const img = image('n.img');
  const src = await domain(62, 'vm2', '/vm/0000-2', img);
  assert.is(await opened(src.p), 'opened');
  const fs1 = new SimBlkfront({ xs: rig.c, guest: src.g, devid: src.p.devid });
  await fs1.connect();
  await fs1.write(0, pattern(8192, 4));
  await fs1.flush();

  const dst = await domain(63, 'vm2--incoming', '/vm/0000-2', img);
  assert.is(await opened(dst.p), 'opened');
  const fd = new SimBlkfront({ xs: rig.c, guest: dst.g, devid: dst.p.devid, timeoutMs: 30_000 });
  const t0 = Date.now();
  void fd.connect().catch(() => undefined);
  const error = await until('the destination\'s error', () => rig.c.tryRead(`${dst.p.backend}/afsfile-error`),
    (WAIT_S + 10) * 1000);
  const after = Date.now() - t0;
  assert.match(error, /source still holds the lock/);
  assert.ok(after >= WAIT_S * 1000 - 200, `failed after ${after} ms, not before migration-lock-wait`);
  assert.is(await until('Closing', async () => (await rig.c.read(`${dst.p.backend}/state`)) === '5' && '5'), '5');
  // xl gives up: the destination is destroyed, the source resumes with its lock and its disk.
  assert.ok((await rig.ts.removeVbd(dst.p, { timeoutMs: 10_000 })).closed);
  await rig.ts.destroy(dst.p);
  assert.is(lockState(src.p), 'held');
  await fs1.write(16, pattern(8192, 5));
  await fs1.flush();
  assert.equal(await fs1.read(0, 8192), pattern(8192, 4));
  assert.equal(await fs1.read(16, 8192), pattern(8192, 5));
  assert.ok((await rig.ts.removeVbd(src.p, { timeoutMs: 10_000 })).closed);
});

test('not a migration: an --incoming domain of another VM is refused by the hotplug script', async () => {
  const img = image('n.img');
  const src = await domain(80, 'vm3', '/vm/0000-3', img);
  assert.is(await opened(src.p), 'opened');
  const other = await domain(81, 'vm3--incoming', '/vm/0000-4', img);
  const refused = await opened(other.p);
  assert.match(refused, /^busy: [\s\S]*already attached read-write to domain 80/, refused);
  assert.ok((await rig.ts.removeVbd(other.p, { timeoutMs: 10_000 })).closed);
  assert.ok((await rig.ts.removeVbd(src.p, { timeoutMs: 10_000 })).closed);
});

test.run();
