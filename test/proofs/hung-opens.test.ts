// A device host (isolation = identity: every disk of the host identity in one process) whose
// images hang on open, more of them than libuv's thread pool has threads: the open, lock and
// close of each image run on a thread of their own (src/native/thread-op.c), so a neighbour in
// the same process still attaches, detaches and attaches again promptly, and the process can
// still end while the opens hang. On faultfs (test/faultfs), in a private mount namespace.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { inPrivateMountNamespace } from '../helpers/faultfs';
import { until } from '../helpers/wait';
import { type SimDevice, waitDevicePid, workerStatus } from './sim-devices';
import { faultDevice, imagePath, startFaultBench } from './faults';
import { HANG_MS, HUNG, POOL, assertHostEnds, assertPrompt, neighbourCycle, say } from './hung-host';

if (inPrivateMountNamespace()) {
  test(`${HUNG} hung opens in one device host (pool of ${POOL}): a neighbour attaches, detaches and attaches ` +
    'again promptly, and the host still ends', async () => {
    const b = await startFaultBench('afsfile-hungopen-', [], { env: { UV_THREADPOOL_SIZE: String(POOL) } });
    const devs: SimDevice[] = [];
    try {
      const first = await faultDevice(b, 70, 'first.img', 1 << 20);
      devs.push(first);
      const host = await waitDevicePid(b.rig, first);
      await b.ffs.ctl(`hang open,fsync ${HANG_MS} hungopen`);
      // Disks of guests that never get to connect: the open is all there is to hang.
      for (let i = 0; i < HUNG; i++) {
        const backing = imagePath(b.ffs.backing, `hungopen${i}.img`);
        fs.mkdirSync(path.dirname(backing), { recursive: true });
        fs.writeFileSync(backing, '');
        fs.truncateSync(backing, 1 << 20);
        await b.rig.ts.createDomain(71 + i);
        await b.rig.ts.addVbd({ domid: 71 + i, target: imagePath(b.ffs.mount, `hungopen${i}.img`) });
      }
      // Each hung attach holds at least one thread in faultfs (a stat or an open).
      await until('the opens hang', async () => ((await b.ffs.stats()).hung ?? 0) >= POOL, 30_000);
      const hosts = (workerStatus(b.rig) as { hosts?: Array<{ pid?: number; devices: number }> }).hosts ?? [];
      assert.equal(hosts.map((h) => h.pid), [host], 'one device host serves them all');

      const { attachMs, detachMs, reattachMs } = await neighbourCycle(b, host, devs);
      const hung = (await b.ffs.stats()).hung ?? 0;
      say(`${hung} faultfs requests hung; the neighbour attached in ${attachMs.toFixed(0)} ms, reached Closed in ` +
        `${detachMs.toFixed(0)} ms, attached again in ${reattachMs.toFixed(0)} ms`);
      assert.ok(hung >= HUNG, `every hung image holds its own thread (${hung} hung)`);
      assertPrompt([['attach', attachMs], ['detach', detachMs], ['attach again', reattachMs]]);
      await assertHostEnds(host, 'opens');
    } finally {
      await b.ffs.ctl('clear').catch(() => undefined);
      for (const d of devs) d.guest.close();
      await b.close();
    }
  });

  test.run();
}
