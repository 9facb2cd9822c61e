// Persistent grants through the real worker and the real xenstored: AFSFILE_PERSISTENT=1
// reaches the device process, which offers feature-persistent; the simulated blkfront (Linux
// xen-blkfront's reuse of grants) negotiates it; data verified in the guest and the image;
// the device process killed under I/O is restarted, adopts the live ring in the mode the
// frontend chose, and finishes the requests; `afsfile status` shows the mappings.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimBlkfront } from '../../src/sim/blkfront';
import { SimGuest } from '../../src/sim/guest';
import { run } from '../helpers/exe';
import { teardown } from '../helpers/hooks';
import { pattern } from '../helpers/pattern';
import { until } from '../helpers/wait';
import { workerEnv } from '../helpers/worker';
import { type WorkerRig, startWorkerRig } from '../helpers/worker-rig';

let rig: WorkerRig | undefined;
let guest: SimGuest | undefined;

teardown(test, async () => {
  guest?.close();
  await rig?.close();
});

interface DevStatus {
  pid: number;
  connected: boolean;
  bytesWritten: number;
  persistentGrants?: { mapped: number; hits: number; direct: number };
}

test('AFSFILE_PERSISTENT=1: negotiated, verified I/O, child killed under I/O and re-adopted, status', async () => {
  rig = await startWorkerRig('afsfile-pgnt-', { env: { AFSFILE_PERSISTENT: '1' } });
  const { c, ts, runDir } = rig;
  const simDir = path.join(rig.dir, 'sim'); // where test/helpers/worker.ts points AFSFILE_SIM_DIR
  fs.mkdirSync(simDir, { recursive: true });
  const image = path.join(rig.dir, 'disk.img');
  fs.writeFileSync(image, '');
  fs.truncateSync(image, 16 * 1024 * 1024);
  const domid = 9;
  guest = new SimGuest({ domid, dir: simDir, pages: 4096 });
  await guest.listen();
  await ts.createDomain(domid);
  const vbd = await ts.addVbd({ domid, target: image });
  assert.ok(await ts.waitBackendState(vbd, 2, 5000), 'InitWait');
  const front = new SimBlkfront({ xs: c, guest, devid: vbd.devid, maxIndirectSegments: 64, queueDepth: 16 });
  const connecting = front.connect();
  await until('image opened', async () => (await c.tryRead(`${vbd.backend}/afsfile-status`)) === 'opened', 10_000);
  await c.write(`${vbd.backend}/hotplug-status`, 'connected');
  const info = await connecting;
  assert.ok(info.persistent, 'both sides offered feature-persistent');
  assert.is(await c.read(`${vbd.backend}/feature-persistent`), '1');

  for (let i = 0; i < 12; i++) await front.write(i * 400, pattern(65536 + i * 512, i));
  for (let i = 0; i < 12; i++) assert.equal(await front.read(i * 400, 65536 + i * 512), pattern(65536 + i * 512, i));
  await front.flush();

  const statusFile = path.join(runDir, `status/dev-${domid}-${vbd.devid}.json`);
  const read = (): DevStatus | false => {
    try {
      return JSON.parse(fs.readFileSync(statusFile, 'utf8')) as DevStatus;
    } catch {
      return false;
    }
  };
  const st = await until('status shows the mappings', () => {
    const s = read();
    return s && s.connected && (s.persistentGrants?.direct ?? 0) > 0 && s;
  }, 10_000);
  assert.ok(st.persistentGrants!.mapped > 0 && st.persistentGrants!.mapped <= front.stats.persistentGrants);
  const text = run(['status'], { env: workerEnv(rig.xs.socketPath, runDir) }).stdout;
  assert.match(text, /persistent grants: \d+ mapped, \d+ segment\(s\) copied by memcpy/);

  // Killed with requests in flight: the restarted process adopts the ring and finishes them.
  const pending = Array.from({ length: 8 }, (_, i) => front.write(10_000 + i * 64, pattern(32768, 50 + i)));
  process.kill(st.pid, 'SIGKILL');
  await Promise.all(pending);
  for (let i = 0; i < 8; i++) assert.equal(await front.read(10_000 + i * 64, 32768), pattern(32768, 50 + i));
  for (let i = 0; i < 12; i++) assert.equal(await front.read(i * 400, 65536 + i * 512), pattern(65536 + i * 512, i));
  await front.flush();
  const disk = fs.readFileSync(image);
  for (let i = 0; i < 8; i++) {
    const off = (10_000 + i * 64) * 512;
    const want = Buffer.from(pattern(32768, 50 + i));
    assert.ok(want.equals(disk.subarray(off, off + 32768)), `the image holds write ${i}`);
  }
  const after = await until('the new process maps again', () => {
    const s = read();
    return s && s.pid !== st.pid && (s.persistentGrants?.mapped ?? 0) > 0 && s;
  }, 10_000);
  assert.ok(after.persistentGrants!.mapped <= front.stats.persistentGrants);
  const r = await ts.removeVbd(vbd);
  assert.ok(r.closed, 'Closed within 10 s');
});

test.run();
