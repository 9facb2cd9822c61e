// Device hosts (isolation, src/worker/spawner.ts and device-host.ts): one device process serves
// every disk of its group. Proven against the real xenstored with simulated guests doing
// verified I/O: the disks of one identity share one process and the spare stays ready (the
// next new group still never waits for a process start); a disk that fails (its image is
// missing) ends alone while its neighbours' I/O goes on; kill -9 of
// the host under load re-attaches every disk to its live ring with no guest error and nothing
// flushed lost; with isolation = domain the disks of two domains get two processes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setup, teardown } from '../helpers/hooks';
import { until } from '../helpers/wait';
import { type WorkerRig, startWorkerRig } from '../helpers/worker-rig';
import {
  type SimDevice, alive, attachSimDevice, devicePid, quantile, waitDevicePid, workerStatus,
} from '../proofs/sim-devices';
import { BLOCK, VerifiedWorkload, seeded } from '../proofs/verified-workload';

let rig: WorkerRig;
const devs: SimDevice[] = [];
const loads: VerifiedWorkload[] = [];
let nextDomid = 60;
const IMAGE_BYTES = 4 << 20;

setup(test, async () => {
  rig = await startWorkerRig('afsfile-host-');
});

teardown(test, async () => {
  await Promise.all(loads.map((w) => w.stop().catch(() => undefined)));
  for (const d of devs) d.guest.close();
  await rig?.close();
});

const cmdline = (pid: number): string => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
type Status = { spare?: { pid?: number; ready: boolean }; hosts?: Array<{ pid?: number; devices: number }> };
const status = (): Status => (workerStatus(rig) ?? {}) as Status;

async function busyDisk(): Promise<{ d: SimDevice; w: VerifiedWorkload }> {
  const d = await attachSimDevice(rig, { domid: nextDomid++, size: IMAGE_BYTES, queueDepth: 8 });
  devs.push(d);
  const w = new VerifiedWorkload(d.front, { dev: devs.length, blocks: IMAGE_BYTES / BLOCK, concurrency: 4,
    maxBlocks: 8, flushEvery: 16, random: seeded(d.domid) });
  loads.push(w);
  w.start();
  return { d, w };
}

const guestErrors = (): string[] => loads.flatMap((w, i) => w.errors.map((e) => `disk ${i}: ${e}`));

test('the disks of one identity share one device process; the spare stays ready for a new group', async () => {
  await until('a ready spare', () => status().spare?.ready, 20_000);
  const first = await busyDisk();
  const host = await waitDevicePid(rig, first.d);
  assert.match(cmdline(host), /worker --spare/, 'the host was the spare started before the attach');
  await until('the next spare', () => status().spare?.ready && status().spare?.pid !== host, 20_000);
  const spare = status().spare!.pid;
  for (let i = 0; i < 3; i++) await busyDisk();
  for (const d of devs) assert.is(await waitDevicePid(rig, d), host, `${d.vbd.backend} is served by the host`);
  assert.is(status().spare?.pid, spare, 'attaches to a running host consume no spare');
  assert.equal(status().hosts?.map((h) => [h.pid, h.devices]), [[host, 4]]);
  await until('every disk did verified I/O', () => loads.every((w) => w.writes > 5), 20_000);
  assert.equal(guestErrors(), []);
});

test('a failing disk ends alone: its neighbours in the process go on', async () => {
  const host = devicePid(rig, devs[0]!)!;
  const before = loads.map((w) => w.writes);
  // An image that is not there (supervisor.test.ts has hostile frontend values, now in one host).
  const dom = nextDomid++;
  await rig.ts.createDomain(dom);
  const missing = await rig.ts.addVbd({ domid: dom, target: path.join(rig.dir, 'missing.img') });
  await until('missing.img refused',
    async () => (await rig.c.tryRead(`${missing.backend}/afsfile-status`)) === 'error');
  await until('the neighbours keep writing', () => loads.every((w, i) => w.writes > before[i]! + 20), 20_000);
  assert.ok(alive(host));
  for (const d of devs) assert.is(devicePid(rig, d), host, 'no neighbour was restarted');
  assert.equal(guestErrors(), []);
});

test('kill -9 of the host under load: every disk re-attaches to its live ring, no guest error', async () => {
  for (let i = 0; i < 4; i++) await busyDisk();
  await until('every disk busy', () => loads.every((w) => w.writes > 5), 20_000);
  const host = await waitDevicePid(rig, devs[0]!);
  for (const d of devs) assert.is(await waitDevicePid(rig, d), host);
  const t0 = performance.now();
  process.kill(host, 'SIGKILL');
  const reattach = await Promise.all(devs.map(async (d) => {
    await waitDevicePid(rig, d, host, 30_000);
    return performance.now() - t0;
  }));
  const resumed = await Promise.all(loads.map((w) => w.nextCompletion(t0)));
  const pids = new Set(devs.map((d) => devicePid(rig, d)));
  // The crash was shared by all of them, so no one's: the group is split in two (supervisor.ts,
  // MAX_SPLITS), each half in a new host.
  assert.ok(pids.size >= 1 && pids.size <= 2, `at most two new processes serve them: ${[...pids].join(', ')}`);
  process.stdout.write(`kill -9 of a host with ${devs.length} busy disks: re-attached after median ` +
    `${quantile(reattach, 0.5).toFixed(0)} ms, last ${Math.max(...reattach).toFixed(0)} ms; guest I/O resumed after ` +
    `${Math.max(...resumed.map((t) => t - t0)).toFixed(0)} ms at most\n`);
  await until('every disk writes again', () => loads.every((w) => w.writes > 50), 30_000);
  await Promise.all(loads.map((w) => w.stop()));
  assert.equal(guestErrors(), []);
  for (let i = 0; i < devs.length; i++) {
    const r = loads[i]!.checkImage(fs.readFileSync(devs[i]!.image), true, loads[i]!.durable.slice());
    assert.equal(r.bad.slice(0, 3), [], `disk ${i}: nothing acknowledged is lost`);
  }
});

test('isolation = domain: a process per guest domain', async () => {
  const r2 = await startWorkerRig('afsfile-host-domain-', { workerArgs: ['--isolation=domain'] });
  try {
    const pidOf = async (domid: number, vdev: string): Promise<number> => {
      fs.writeFileSync(path.join(r2.dir, `${domid}-${vdev}.img`), Buffer.alloc(1 << 20));
      const p = await r2.ts.addVbd({ domid, vdev, target: path.join(r2.dir, `${domid}-${vdev}.img`) });
      await until(`${p.backend} opened`, async () => (await r2.c.tryRead(`${p.backend}/afsfile-status`)) === 'opened');
      return until('its process', () => {
        const s = JSON.parse(fs.readFileSync(path.join(r2.runDir, 'status/worker.json'), 'utf8')) as
          { devices: Array<{ backend: string; childPid?: number }> };
        return s.devices.find((e) => e.backend === p.backend)?.childPid;
      });
    };
    const spareReady = (): boolean | undefined => {
      try {
        return (JSON.parse(fs.readFileSync(path.join(r2.runDir, 'status/worker.json'), 'utf8')) as Status).spare?.ready;
      } catch {
        return false;
      }
    };
    // Before the first spare is ready an attach gets a process of its own (`--device`), no host.
    await until('a ready spare', spareReady, 20_000);
    for (const d of [80, 81]) await r2.ts.createDomain(d);
    const a1 = await pidOf(80, 'xvda');
    const a2 = await pidOf(80, 'xvdb');
    const b1 = await pidOf(81, 'xvda');
    assert.is(a1, a2, 'the disks of one domain share a process');
    assert.is.not(a1, b1, 'another domain has its own');
  } finally {
    await r2.close();
  }
});

test.run();
