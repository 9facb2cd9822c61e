// --sim-dir on the command line (not only AFSFILE_SIM_DIR) is where the worker's device process
// finds the simulated guests: the real xenstored, dist/afsfile worker and a guest in this process.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimBlkfront } from '../../src/sim/blkfront';
import { SimGuest } from '../../src/sim/guest';
import { pattern } from '../helpers/pattern';
import { withTempDir } from '../helpers/temp';
import { workerEnv } from '../helpers/worker';
import { startWorkerRig } from '../helpers/worker-rig';

test('--sim-dir wins over AFSFILE_SIM_DIR and reaches the device process', () =>
  withTempDir(async (simDir) => {
    const rig = await startWorkerRig('afsfile-simdir-', { workerArgs: ['--sim-dir', simDir] });
    const domid = 9;
    const guest = new SimGuest({ domid, dir: simDir, pages: 512 });
    try {
      // The environment points elsewhere, at a directory with no guest in it.
      assert.is.not(workerEnv(rig.xs.socketPath, rig.runDir).AFSFILE_SIM_DIR, simDir);
      await guest.listen();
      const image = path.join(rig.dir, 'disk.img');
      fs.writeFileSync(image, '');
      fs.truncateSync(image, 4 * 1024 * 1024);
      await rig.ts.createDomain(domid);
      const vbd = await rig.ts.addVbd({ domid, target: image });
      await rig.ts.hotplugConnected(vbd);
      const front = new SimBlkfront({ xs: rig.c, guest, devid: vbd.devid, timeoutMs: 5000 });
      await front.connect();
      await front.write(8, pattern(4096, 3));
      assert.equal(await front.read(8, 4096), pattern(4096, 3));
      await front.close();
    } finally {
      guest.close();
      await rig.close();
    }
  }, 'afsfile-guests-'));

test.run();
