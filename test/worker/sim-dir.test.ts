// --sim-dir on the command line (not only AFSFILE_SIM_DIR) is where the worker's device process
// finds the simulated guests: the real xenstored, dist/afsfile worker and a guest in this process.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimBlkfront } from '../../src/sim/blkfront';
import { SimGuest } from '../../src/sim/guest';
import { Toolstack } from '../../src/sim/toolstack';
import { type XenStoreClient, connectXenStore } from '../../src/xen/xenstore-client';
import { setup, teardown } from '../helpers/hooks';
import { pattern } from '../helpers/pattern';
import { tempDir } from '../helpers/temp';
import { type RunningWorker, startWorker, workerEnv } from '../helpers/worker';
import { type Xenstored, startXenstored } from '../helpers/xenstored';

let xs: Xenstored;
let c: XenStoreClient;
let tmp: { dir: string; cleanup: () => void };
let worker: RunningWorker | undefined;
let guest: SimGuest | undefined;

setup(test, async () => {
  tmp = tempDir('afsfile-simdir-');
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

test('--sim-dir wins over AFSFILE_SIM_DIR and reaches the device process', async () => {
  const runDir = path.join(tmp.dir, 'run');
  const simDir = path.join(tmp.dir, 'guests');
  fs.mkdirSync(simDir);
  // The environment points elsewhere, at a directory with no guest in it.
  assert.is.not(workerEnv(xs.socketPath, runDir).AFSFILE_SIM_DIR, simDir);
  const image = path.join(tmp.dir, 'disk.img');
  fs.writeFileSync(image, '');
  fs.truncateSync(image, 4 * 1024 * 1024);
  const domid = 9;
  guest = new SimGuest({ domid, dir: simDir, pages: 512 });
  await guest.listen();
  worker = await startWorker(xs.socketPath, runDir, ['--sim-dir', simDir]);
  const ts = new Toolstack(c);
  await ts.createDomain(domid);
  const vbd = await ts.addVbd({ domid, target: image });
  await ts.hotplugConnected(vbd);
  const front = new SimBlkfront({ xs: c, guest, devid: vbd.devid, timeoutMs: 5000 });
  await front.connect();
  await front.write(8, pattern(4096, 3));
  assert.equal(await front.read(8, 4096), pattern(4096, 3));
  await front.close();
});

test.run();
