// The cell-wide image lock across two "hosts": two workers, each with its own real xenstored
// and run dir, attach one image, a file both can open (a local file stands for a shared file
// system: flock between the two is the kernel's, as between two clients of one NFS or AFS
// server it is the server's). The test plays libxl on both.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { VbdPaths } from '../../src/sim/toolstack';
import { alive } from '../helpers/proc-tree';
import { setup, teardown } from '../helpers/hooks';
import { devFile, flocks } from '../helpers/lock-probe';
import { until } from '../helpers/wait';
import { type RunningWorker, startWorker } from '../helpers/worker';
import { type WorkerRig, startWorkerRig } from '../helpers/worker-rig';
import { sparseFile } from '../helpers/temp';

let a: WorkerRig;
let b: WorkerRig;
let aWorker: RunningWorker;
let nextDomid = 40;

setup(test, async () => {
  a = await startWorkerRig('afsfile-lock-a-');
  b = await startWorkerRig('afsfile-lock-b-');
  aWorker = a.worker;
});

teardown(test, async () => {
  await a?.close(aWorker);
  await b?.close();
});

function image(name: string): string {
  return sparseFile(a.dir, name);
}

async function attach(rig: WorkerRig, target: string, access: 'rw' | 'ro' = 'rw'): Promise<VbdPaths> {
  const domid = nextDomid++;
  await rig.ts.createDomain(domid);
  return rig.ts.addVbd({ domid, target, access });
}

async function verdict(rig: WorkerRig, p: VbdPaths): Promise<{ status: string; error: string | undefined }> {
  const s = await until(`${p.backend}/afsfile-status`, () => rig.c.tryRead(`${p.backend}/afsfile-status`), 15_000);
  return { status: s, error: await rig.c.tryRead(`${p.backend}/afsfile-error`) };
}

test('a second host\'s rw attach is refused with the hotplug error; after the first detaches it attaches', async () => {
  const img = image('rw.img');
  const first = await attach(a, img);
  assert.equal(await verdict(a, first), { status: 'opened', error: undefined });
  assert.match(flocks(img).join('\n'), /FLOCK +ADVISORY +WRITE/, 'an exclusive flock is held');
  assert.is((await until('its status file', () => devFile(a, first)))?.lock?.state, 'held');

  const second = await attach(b, img);
  const refused = await verdict(b, second);
  assert.is(refused.status, 'busy');
  assert.match(refused.error ?? '', /in use by another host/);
  assert.match(refused.error ?? '', /afsfile status/, 'it says how to find the holder');
  const ro = await attach(b, img, 'ro');
  assert.is((await verdict(b, ro)).status, 'busy', 'a read-only attach is refused too');

  const pid = (await until('its status file', () => devFile(a, first))).pid;
  assert.ok((await a.ts.removeVbd(first, { timeoutMs: 10_000 })).closed);
  await a.ts.destroy(first);
  await until('the first device process to end', () => !alive(pid), 15_000);
  assert.equal(flocks(img), [], 'the last close released it');
  const third = await attach(b, img);
  assert.equal(await verdict(b, third), { status: 'opened', error: undefined });
  const bPid = (await until('its status file', () => devFile(b, third))).pid;
  assert.ok((await b.ts.removeVbd(third, { timeoutMs: 10_000 })).closed);
  await b.ts.destroy(third);
  await until('its device process to end', () => !alive(bPid), 15_000);
});

test('read-only on both hosts shares the image (shared locks)', async () => {
  const img = image('ro.img');
  const one = await attach(a, img, 'ro');
  const two = await attach(b, img, 'ro');
  assert.equal(await verdict(a, one), { status: 'opened', error: undefined });
  assert.equal(await verdict(b, two), { status: 'opened', error: undefined });
  assert.is(flocks(img).filter((l) => / READ /.test(l)).length, 2, flocks(img).join('\n'));
  assert.is((await until('its status file', () => devFile(b, two)))?.lock?.mode, 'shared');
  const rw = await attach(b, img);
  assert.is((await verdict(b, rw)).status, 'busy', 'rw beside another host\'s ro is refused');
  for (const [rig, p] of [[a, one], [b, two]] as const) {
    const pid = (await until('its status file', () => devFile(rig, p))).pid;
    assert.ok((await rig.ts.removeVbd(p, { timeoutMs: 10_000 })).closed);
    await rig.ts.destroy(p);
    await until('the device process to end', () => !alive(pid), 15_000);
  }
});

test('kill -9 of the worker: its device process keeps the lock, the restarted worker adopts it; ' +
  'killing both releases it', async () => {
  const img = image('adopt.img');
  const dev = await attach(a, img);
  assert.equal(await verdict(a, dev), { status: 'opened', error: undefined });
  const first = (await until('its status file', () => devFile(a, dev)?.lock?.state === 'held' && devFile(a, dev)))
    .pid;
  await aWorker.stop('SIGKILL');
  await until('the orphaned device process to hand the lock on', () => devFile(a, dev)?.handingOn === true, 15_000);
  assert.ok(alive(first));
  const during = await attach(b, img);
  assert.is((await verdict(b, during)).status, 'busy', 'still locked while no worker runs');

  aWorker = await startWorker(a.xs.socketPath, a.runDir);
  const adopted = await until('the new device process with the adopted lock', () => {
    const f = devFile(a, dev);
    return f && f.pid !== first && f.lock?.state === 'adopted' ? f : undefined;
  }, 20_000);
  await until('the old device process to end', () => !alive(first), 15_000);
  assert.is(flocks(img).length, 1, `one lock, never released: ${flocks(img).join('\n')}`);
  assert.match(flocks(img)[0]!, /WRITE/);
  const after = await attach(b, img);
  assert.is((await verdict(b, after)).status, 'busy', 'the adopted lock keeps the other host out');

  await aWorker.stop('SIGKILL');
  process.kill(adopted.pid, 'SIGKILL');
  await until('both gone', () => !alive(adopted.pid), 10_000);
  const last = await attach(b, img);
  assert.equal(await verdict(b, last), { status: 'opened', error: undefined }, 'released by the kill of both');
});

test.run();
