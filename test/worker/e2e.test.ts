// End to end: libxl (the toolstack), the real xenstored, `afsfile worker --platform sim` with its
// device process, and a simulated guest in this process (memory in a shared file, event
// channels over a unix socket: src/sim, DESIGN "Platform"). Verified I/O; Connected only after
// hotplug-status=connected; the device process killed under I/O and restarted by the
// supervisor, re-attaching to the live ring; the worker stopped (SIGTERM) and started again
// under a live guest; libxl's teardown.
import { setTimeout as sleep } from 'node:timers/promises';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import { setup, teardown } from '../helpers/hooks';
import * as assert from 'uvu/assert';
import { SimBlkfront } from '../../src/sim/blkfront';
import { SimGuest } from '../../src/sim/guest';
import { Toolstack } from '../../src/sim/toolstack';
import { type XenStoreClient, connectXenStore } from '../../src/xen/xenstore-client';
import { tempDir } from '../helpers/exe';
import { until } from '../helpers/wait';
import { type RunningWorker, startWorker } from '../helpers/worker';
import { type Xenstored, startXenstored } from '../helpers/xenstored';
import { pattern } from '../helpers/pattern';

let xs: Xenstored;
let c: XenStoreClient;
let tmp: { dir: string; cleanup: () => void };
let worker: RunningWorker | undefined;
let guest: SimGuest | undefined;


setup(test, async () => {
  tmp = tempDir('afsfile-e2e-');
  xs = await startXenstored();
  c = await connectXenStore({ env: { XENSTORED_PATH: xs.socketPath } });
});

teardown(test, async () => {
  if (worker && worker.proc.exitCode === null) await worker.stop('SIGKILL');
  guest?.close();
  c?.close();
  await xs?.stop();
  tmp?.cleanup();
});

test('a simulated guest through the worker: handshake, verified I/O, child killed under I/O, teardown', async () => {
  const runDir = path.join(tmp.dir, 'run');
  const simDir = path.join(tmp.dir, 'sim'); // where test/helpers/worker.ts points AFSFILE_SIM_DIR
  fs.mkdirSync(simDir, { recursive: true });
  const image = path.join(tmp.dir, 'disk.img');
  fs.writeFileSync(image, '');
  fs.truncateSync(image, 16 * 1024 * 1024);
  const domid = 7;
  guest = new SimGuest({ domid, dir: simDir, pages: 2048 });
  await guest.listen();
  worker = await startWorker(xs.socketPath, runDir);
  const ts = new Toolstack(c);
  await ts.createDomain(domid);
  const vbd = await ts.addVbd({ domid, target: image });
  assert.ok(await ts.waitBackendState(vbd, 2, 3000), 'InitWait');

  const front = new SimBlkfront({ xs: c, guest, devid: vbd.devid, maxIndirectSegments: 64, queueDepth: 16 });
  const connecting = front.connect();
  await until('frontend Initialised', async () => (await c.tryRead(`${vbd.frontend}/state`)) === '3');
  await until('image opened', async () => (await c.tryRead(`${vbd.backend}/afsfile-status`)) === 'opened');
  await sleep(200);
  assert.is.not(await c.tryRead(`${vbd.backend}/state`), '4', 'not Connected before hotplug-status=connected');
  await c.write(`${vbd.backend}/hotplug-status`, 'connected'); // what block-afsfile add writes
  const info = await connecting;
  assert.is(info.sectors, 32768);

  for (let i = 0; i < 16; i++) await front.write(i * 300, pattern(65536 + i * 512, i));
  for (let i = 0; i < 16; i++) assert.equal(await front.read(i * 300, 65536 + i * 512), pattern(65536 + i * 512, i));
  await front.flush();

  const statusFile = path.join(runDir, `status/dev-${domid}-${vbd.devid}.json`);
  const st = await until('status shows bytes', () => {
    try {
      const s = JSON.parse(fs.readFileSync(statusFile, 'utf8')) as { bytesWritten: number; connected: boolean; pid: number };
      return s.bytesWritten > 0 && s.connected && s;
    } catch {
      return false;
    }
  }, 5000);

  // Kill the device process with requests in flight: the supervisor restarts it, it re-attaches
  // to the live ring and finishes them.
  const pending = Array.from({ length: 8 }, (_, i) => front.write(10_000 + i * 64, pattern(32768, 50 + i)));
  process.kill(st.pid, 'SIGKILL');
  await Promise.all(pending);
  for (let i = 0; i < 8; i++) assert.equal(await front.read(10_000 + i * 64, 32768), pattern(32768, 50 + i));
  for (let i = 0; i < 16; i++) assert.equal(await front.read(i * 300, 65536 + i * 512), pattern(65536 + i * 512, i));
  await front.flush();
  const disk = fs.readFileSync(image);
  for (let i = 0; i < 8; i++) {
    const off = (10_000 + i * 64) * 512;
    assert.ok(Buffer.from(pattern(32768, 50 + i)).equals(disk.subarray(off, off + 32768)), `the image holds write ${i}`);
  }
  const ws = JSON.parse(fs.readFileSync(path.join(runDir, 'status/worker.json'), 'utf8')) as { devices: Array<{ restarts: number }> };
  assert.is(ws.devices[0]?.restarts, 1);

  // SIGTERM: the worker quiesces and exits 0 leaving the device Connected; the next worker's
  // device process re-attaches to the live ring and I/O goes on.
  assert.is(await worker.stop('SIGTERM'), 0, worker.stderr());
  assert.is(await c.read(`${vbd.backend}/state`), '4', 'still Connected');
  const during = front.write(20_000, pattern(8192, 99));
  worker = await startWorker(xs.socketPath, runDir);
  await during;
  assert.equal(await front.read(20_000, 8192), pattern(8192, 99));

  const r = await ts.removeVbd(vbd);
  assert.ok(r.closed, 'Closed within 10 s');
  process.stdout.write(`teardown: Closed ${r.waitedMs} ms after online=0 + state=5\n`);
});

test.run();
