// A dom0 with kernel xen-blkback loaded: blkback probes every backend/vbd device, whatever its
// script, so the worker leaves such a device to it and says why (xl shows the hotplug script's
// hotplug-error); backend/vbd3 devices are served as ever. The real xenstored and dist/afsfile;
// blkback's presence is its sysfs directory under AFSFILE_CHECK_ROOT (the host's /sys is not ours).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hotplugAdd } from '../helpers/hotplug-add';
import { until } from '../helpers/wait';
import { type WorkerRig, startWorkerRig } from '../helpers/worker-rig';
import { setup, teardown } from '../helpers/hooks';
import { sparseFile, tempDir } from '../helpers/temp';

let rig: WorkerRig;
let sysRoot: { dir: string; cleanup: () => void };
const blkbackDir = (): string => path.join(sysRoot.dir, 'sys/module/xen_blkback');

setup(test, async () => {
  sysRoot = tempDir('afsfile-sysroot-');
  fs.mkdirSync(blkbackDir(), { recursive: true });
  rig = await startWorkerRig('afsfile-blkback-', { env: { AFSFILE_CHECK_ROOT: sysRoot.dir } });
});

teardown(test, async () => {
  await rig?.close();
  sysRoot?.cleanup();
});

function image(name: string): string {
  return sparseFile(rig.dir, name);
}

test('backend/vbd while blkback is loaded: left to blkback, hotplug-error says use backendtype=tap', async () => {
  await rig.ts.createDomain(21);
  const vbd = await rig.ts.addVbd({ domid: 21, target: image('vbd.img') });
  const run = await hotplugAdd(rig, vbd.backend);
  assert.is(run.status, 1, run.output);
  const err = await rig.c.tryRead(`${vbd.backend}/hotplug-error`);
  assert.match(err ?? '', /xen-blkback is loaded/);
  assert.match(err ?? '', /backendtype=tap/);
  assert.is(await rig.c.tryRead(`${vbd.backend}/hotplug-status`), 'error');
  // Not claimed: no InitWait, no feature keys of ours, no device process.
  assert.is(await rig.c.tryRead(`${vbd.backend}/state`), '1');
  assert.is(await rig.c.tryRead(`${vbd.backend}/feature-flush-cache`), undefined);
  assert.match(rig.worker.stderr(), /not served: kernel xen-blkback is loaded/);
  await rig.ts.destroy(vbd);
});

test('backend/vbd3 beside a loaded blkback is served; backend/vbd again once it is unloaded', async () => {
  await rig.ts.createDomain(22);
  const tap = await rig.ts.addVbd({ domid: 22, target: `aio:${image('tap.img')}`, kind: 'vbd3' });
  const run = await hotplugAdd(rig, tap.backend);
  assert.is(run.status, 0, run.output);
  assert.is(await rig.c.tryRead(`${tap.backend}/afsfile-status`), 'opened');
  fs.rmSync(blkbackDir(), { recursive: true });
  await rig.ts.createDomain(23);
  const vbd = await rig.ts.addVbd({ domid: 23, target: image('vbd2.img') });
  assert.is((await hotplugAdd(rig, vbd.backend)).status, 0);
  await until('claimed', async () => (await rig.c.tryRead(`${vbd.backend}/state`)) === '2', 5000);
  await rig.ts.removeVbd(tap, { timeoutMs: 10_000 });
  await rig.ts.removeVbd(vbd, { timeoutMs: 10_000 });
});

test.run();
