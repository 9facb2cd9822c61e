// A device process's status file through the real worker and a simulated guest: fresh counters
// within seconds of I/O, the final figures (fsynced, not dirty) once the device goes idle, and
// then no rewrites at all while it stays idle (it used to be rewritten every second per disk).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimBlkfront } from '../../src/sim/blkfront';
import { SimGuest } from '../../src/sim/guest';
import { pattern } from '../helpers/pattern';
import { setTimeout as sleep } from 'node:timers/promises';
import { until } from '../helpers/wait';
import { type WorkerRig, startWorkerRig } from '../helpers/worker-rig';

let rig: WorkerRig;
let guest: SimGuest | undefined;

test.before(async () => {
  rig = await startWorkerRig('afsfile-status-idle-', { config: 'fsync-interval = 1\n' });
});

test.after(async () => {
  guest?.close();
  await rig.close();
});

interface DevStatus { bytesWritten: number; dirty: boolean; lastFsync?: string; connected: boolean; inFlight: number }

test('status: fresh while busy, final figures after, untouched while idle', async () => {
  const simDir = path.join(rig.dir, 'sim');
  fs.mkdirSync(simDir, { recursive: true });
  const image = path.join(rig.dir, 'disk.img');
  fs.writeFileSync(image, '');
  fs.truncateSync(image, 16 << 20);
  const domid = 9;
  guest = new SimGuest({ domid, dir: simDir, pages: 1024 });
  await guest.listen();
  await rig.ts.createDomain(domid);
  const vbd = await rig.ts.addVbd({ domid, target: image });
  const front = new SimBlkfront({ xs: rig.c, guest, devid: vbd.devid });
  const connecting = front.connect();
  await until('image opened', async () => (await rig.c.tryRead(`${vbd.backend}/afsfile-status`)) === 'opened');
  await rig.ts.hotplugConnected(vbd);
  await connecting;
  const file = path.join(rig.runDir, `status/dev-${domid}-${vbd.devid}.json`);
  const read = (): DevStatus | undefined => {
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8')) as DevStatus;
    } catch {
      return undefined;
    }
  };

  for (let i = 0; i < 8; i++) await front.write(i * 64, pattern(32768, i));
  const t0 = Date.now();
  const wrote = (): DevStatus | false => {
    const s = read();
    return s !== undefined && s.bytesWritten === 8 * 32768 && s;
  };
  await until('the status file shows the writes', wrote, 4000);
  assert.ok(Date.now() - t0 < 4000);
  // fsync-interval 1 s: clean within ~2 s, and the status says so within the status interval.
  const settled = (): DevStatus | false => {
    const s = read();
    return s !== undefined && !s.dirty && s.lastFsync !== undefined && s.inFlight === 0 && s;
  };
  const last = await until('the final figures: fsynced, not dirty', settled, 8000);
  assert.ok(last.connected);
  await sleep(2500); // one more status interval: a last write may still be due
  const mtime = fs.statSync(file).mtimeMs;
  await sleep(3500);
  assert.is(fs.statSync(file).mtimeMs, mtime, 'not rewritten while idle');
  assert.is(read()?.bytesWritten, 8 * 32768);
  await front.close();
});

test.run();
