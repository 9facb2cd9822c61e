// SIGHUP (DESIGN contracts, Signals: reload config): the supervisor reads the config file again;
// hold-timeout and fsync-interval reach running device processes at once, the advertised limits
// apply to devices claimed afterwards, and a broken file changes nothing. Real xenstored and
// real device processes (sim platform); the test plays libxl.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import { setup, teardown } from '../helpers/hooks';
import * as assert from 'uvu/assert';
import type { Toolstack, VbdPaths } from '../../src/sim/toolstack';
import type { XenStoreClient } from '../../src/xen/xenstore-client';
import { until } from '../helpers/wait';
import type { RunningWorker } from '../helpers/worker';
import { type WorkerRig, startWorkerRig } from '../helpers/worker-rig';

let rig: WorkerRig;
let c: XenStoreClient;
let ts: Toolstack;
let runDir: string;
let worker: RunningWorker;
let nextDomid = 40;

setup(test, async () => {
  rig = await startWorkerRig('afsfile-reload-', { config: 'max-indirect-segments = 64\nhold-timeout = 100\n' });
  ({ c, ts, runDir, worker } = rig);
});

teardown(test, () => rig?.close());

const config = (text: string): void => fs.writeFileSync(path.join(rig.dir, 'afsfile.conf'), text);

async function device(): Promise<VbdPaths> {
  const img = path.join(rig.dir, `d${nextDomid}.img`);
  fs.writeFileSync(img, Buffer.alloc(0));
  fs.truncateSync(img, 1 << 20);
  const domid = nextDomid++;
  await ts.createDomain(domid);
  const p = await ts.addVbd({ domid, target: img });
  await until(`${p.backend} opened`, async () => (await c.tryRead(`${p.backend}/afsfile-status`)) === 'opened', 10_000);
  return p;
}

type DeviceStatus = { pid: number; holdTimeoutS: number; fsyncIntervalS: number };
function deviceStatus(p: VbdPaths): DeviceStatus | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(runDir, `status/dev-${p.domid}-${p.devid}.json`), 'utf8')) as DeviceStatus;
  } catch {
    return undefined;
  }
}

const hup = (): boolean => worker.proc.kill('SIGHUP');

test('SIGHUP: timings reach running devices now, limits apply to new claims, a broken file changes nothing', async () => {
  const first = await device();
  assert.is(await c.tryRead(`${first.backend}/feature-max-indirect-segments`), '64');
  const before = await until('first device status', () => deviceStatus(first));
  assert.is(before.holdTimeoutS, 100);
  assert.is(before.fsyncIntervalS, 5, 'the default');

  config('max-indirect-segments = 32\nhold-timeout = 7\nfsync-interval = 2\n');
  hup();
  const after = await until('retuned without a restart', () => { const s = deviceStatus(first); return s?.holdTimeoutS === 7 && s; });
  assert.is(after.fsyncIntervalS, 2);
  assert.is(after.pid, before.pid, 'the same device process');
  assert.is(await c.tryRead(`${first.backend}/feature-max-indirect-segments`), '64', 'what was advertised stays');
  await until('the reload is logged', () => /SIGHUP: reloaded the settings \(hold-timeout 7 s, fsync-interval 2 s/.test(worker.stderr()));

  const second = await device();
  assert.is(await c.tryRead(`${second.backend}/feature-max-indirect-segments`), '32');
  assert.is((await until('second device status', () => deviceStatus(second))).holdTimeoutS, 7);

  config('hold-timeout = soon\n');
  hup();
  await until('the refusal is logged', () => /SIGHUP: the settings were not reloaded, the old ones stay: .*hold-timeout/.test(worker.stderr()));
  // Out of range (was "reloaded", then every new device stuck in state 1): refused, with the line.
  config('hold-timeout = 9\nmax-queues = 0\n');
  hup();
  await until('the range refusal is logged', () => /SIGHUP: the settings were not reloaded, the old ones stay: .*afsfile\.conf:2: max-queues expects a whole number from 1 to 256; got "0"/.test(worker.stderr()));
  const third = await device();
  assert.is(await c.tryRead(`${third.backend}/feature-max-indirect-segments`), '32');
  assert.is((await until('third device status', () => deviceStatus(third))).holdTimeoutS, 7);
  assert.is(worker.proc.exitCode, null, 'the supervisor kept running');

  // A restarted process gets the timings of now, with the limits its device was claimed with.
  process.kill(before.pid, 'SIGKILL');
  const again = await until('restarted', () => { const s = deviceStatus(first); return s && s.pid !== before.pid && s; }, 15_000);
  assert.is(again.holdTimeoutS, 7);
  for (const p of [first, second, third]) assert.ok((await ts.removeVbd(p, { timeoutMs: 10_000 })).closed, `${p.backend} closed`);
});

test.run();
