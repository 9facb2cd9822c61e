// A device host that keeps crashing because of one of its disks (here: a kill -9 whenever it
// serves that disk, standing for a bug one guest's disk triggers): a crash of a process that
// served several disks is no disk's own, so it does not count against their restart limits;
// each such crash splits the group in two (src/worker/supervisor.ts, MAX_SPLITS) until the
// disk is alone in its process, where its crashes are its own and it fails at its limit. Its
// neighbours, doing verified I/O, are restarted a few times (a pause, no guest error) and go on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { splitBits } from '../../src/worker/supervisor';
import { setup, teardown } from '../helpers/hooks';
import { until } from '../helpers/wait';
import { type WorkerRig, startWorkerRig } from '../helpers/worker-rig';
import { type SimDevice, alive, attachSimDevice, devicePid, waitDevicePid, workerStatus } from '../proofs/sim-devices';
import { BLOCK, VerifiedWorkload, seeded } from '../proofs/verified-workload';

let rig: WorkerRig;
const devs: SimDevice[] = [];
const loads: VerifiedWorkload[] = [];
const IMAGE_BYTES = 4 << 20;
/** Domains whose backend paths split apart within two crashes (checked below). */
const DOMIDS = [130, 131, 132, 133];

setup(test, async () => {
  rig = await startWorkerRig('afsfile-split-');
});

/** Stops a workload; the failed disk's never completes what was in flight: not waited for long. */
const stop = (w: VerifiedWorkload): Promise<unknown> =>
  Promise.race([w.stop().catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);

teardown(test, async () => {
  await Promise.all(loads.map(stop));
  for (const d of devs) d.guest.close();
  await rig?.close();
});

type Entry = { backend: string; phase?: string; restarts?: number };
const entry = (d: SimDevice): Entry | undefined =>
  (workerStatus(rig)?.devices as Entry[] | undefined)?.find((e) => e.backend === d.vbd.backend);

test('a host crashing for one disk: its group splits until that disk is alone; only it fails', async () => {
  const paths = DOMIDS.map((id) => `/local/domain/0/backend/vbd/${id}/51712`);
  assert.is.not(splitBits(paths[0]!, 2), splitBits(paths[2]!, 2), 'the poison disk is alone after two splits');
  for (const domid of DOMIDS) {
    const d = await attachSimDevice(rig, { domid, size: IMAGE_BYTES, queueDepth: 8 });
    devs.push(d);
    const w = new VerifiedWorkload(d.front, { dev: devs.length, blocks: IMAGE_BYTES / BLOCK, concurrency: 4,
      maxBlocks: 8, flushEvery: 16, random: seeded(domid) });
    loads.push(w);
    w.start();
  }
  const [poison, ...others] = devs as [SimDevice, ...SimDevice[]];
  const host = await waitDevicePid(rig, poison);
  for (const d of others) assert.is(await waitDevicePid(rig, d), host, 'one host serves them all');
  await until('every disk busy', () => loads.every((w) => w.writes > 5), 20_000);

  let kills = 0;
  for (; kills < 12; kills++) {
    const pid = await until('the poison disk served, or failed',
      () => (entry(poison)?.phase === 'failed' ? -1 : devicePid(rig, poison)), 30_000);
    if (pid === -1) break;
    process.kill(pid, 'SIGKILL');
    await until('the poison disk restarted, or failed', () => entry(poison)?.phase === 'failed' ||
      ((p) => p !== undefined && p !== pid && alive(p))(devicePid(rig, poison)), 30_000);
  }
  // Two crashes shared with neighbours, then its own limit: 5 restarts, the 6th crash fails it.
  assert.is(entry(poison)?.phase, 'failed');
  assert.is(kills, 8, `killed ${kills} times`);
  for (const d of others) {
    const e = entry(d);
    assert.is(e?.phase, 'running', `${d.vbd.backend} goes on`);
    assert.ok((e?.restarts ?? 0) <= 2, `${d.vbd.backend}: ${e?.restarts} restarts`);
  }
  const before = loads.map((w) => w.writes);
  await until('the neighbours keep writing', () => others.every((_, i) => loads[i + 1]!.writes > before[i + 1]! + 20),
    20_000);
  await Promise.all(loads.slice(1).map((w) => w.stop()));
  for (let i = 1; i < loads.length; i++) assert.equal(loads[i]!.errors, [], `disk ${i}: no guest error`);
});

test.run();
