// The node_exporter textfile through the real worker (metrics-file in its config) and a
// simulated guest: the guest's writes appear in the file within seconds, parsed with a strict
// reader of the text format; the file is left alone while nothing moves; afsfile_worker_up 0
// after SIGTERM.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimBlkfront } from '../../src/sim/blkfront';
import { SimGuest } from '../../src/sim/guest';
import { pattern } from '../helpers/pattern';
import { type Parsed, parseProm } from '../helpers/prom';
import { tempDir } from '../helpers/temp';
import { until } from '../helpers/wait';
import { type WorkerRig, startWorkerRig } from '../helpers/worker-rig';

let rig: WorkerRig | undefined;
let guest: SimGuest | undefined;
const promDir = tempDir('afsfile-prom-');
const prom = path.join(promDir.dir, 'afsfile.prom');

test.before(async () => {
  rig = await startWorkerRig('afsfile-metrics-',
    { config: 'fsync-interval = 1\n', workerArgs: [`--metrics-file=${prom}`] });
});

test.after(async () => {
  guest?.close();
  await rig?.close();
  promDir.cleanup();
});

const read = (): Parsed | undefined => {
  try {
    return parseProm(fs.readFileSync(prom, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e; // a file that does not parse fails the test
  }
};

test('metrics-file: the guest\'s writes within seconds, untouched while idle, worker_up 0 after stop', async () => {
  const r = rig!;
  try {
    await until('the metrics file appears', () => read()?.get('afsfile_worker_up') === 1, 10_000);
    const simDir = path.join(r.dir, 'sim');
    fs.mkdirSync(simDir, { recursive: true });
    const image = path.join(r.dir, 'disk.img');
    fs.writeFileSync(image, '');
    fs.truncateSync(image, 16 << 20);
    const domid = 9;
    guest = new SimGuest({ domid, dir: simDir, pages: 1024 });
    await guest.listen();
    await r.ts.createDomain(domid);
    const vbd = await r.ts.addVbd({ domid, target: image });
    const front = new SimBlkfront({ xs: r.c, guest, devid: vbd.devid });
    const connecting = front.connect();
    await until('image opened', async () => (await r.c.tryRead(`${vbd.backend}/afsfile-status`)) === 'opened');
    await r.ts.hotplugConnected(vbd);
    await connecting;
    for (let i = 0; i < 8; i++) await front.write(i * 64, pattern(32768, i));
    await front.read(0, 32768);
    const dev = { kind: 'vbd', domid: String(domid), identity: 'host' };
    const p = await until('the writes in the metrics file', () => {
      const m = read();
      return m?.get('afsfile_device_bytes_total', { ...dev, direction: 'write' }) === 8 * 32768
        && (m.get('afsfile_device_last_fsync_timestamp_seconds', dev) ?? 0) > 0 && m;
    }, 15_000);
    assert.is(p.get('afsfile_device_requests_total', { ...dev, op: 'write' }), 8);
    assert.ok((p.get('afsfile_device_requests_total', { ...dev, op: 'read' }) ?? 0) >= 1);
    assert.is(p.get('afsfile_device_up', dev), 1);
    assert.is(p.get('afsfile_device_errors_total', dev), 0);
    assert.is(p.get('afsfile_device_held_requests', dev), 0);
    assert.is(p.get('afsfile_device_budget_stalls_total', { ...dev, budget: 'slot' }), 0);
    assert.ok((p.get('afsfile_device_request_duration_seconds_count', dev) ?? 0) >= 9);
    assert.equal(fs.readdirSync(path.dirname(prom)).filter((n) => n.includes('.tmp')), [], 'no temporary file left');
    // Idle: the device's status settles, then the metrics file stays as it is.
    await sleep(8000);
    const ino = fs.statSync(prom).ino;
    await sleep(6000);
    assert.is(fs.statSync(prom).ino, ino, 'not rewritten while nothing moves');
    await front.close();
  } finally {
    await r.worker.stop('SIGTERM');
  }
  assert.is(read()?.get('afsfile_worker_up'), 0, 'the worker said it stopped');
});

test.run();
