// A device host (isolation = identity: every disk of the host identity in one process) whose
// images hang on close, more of them than libuv's thread pool has threads (a close that stores
// to a file server that never answers: OpenAFS stores dirty data at close, FUSE asks its daemon
// at every close): the closes run on threads of their own (src/native/thread-op.c), so the
// detached disks still reach Closed, a neighbour in the same process goes on with its I/O,
// attaches, detaches and attaches again promptly, and the process can still end while the
// closes hang. On faultfs (test/faultfs, `hang close`), in a private mount namespace.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { inPrivateMountNamespace } from '../helpers/faultfs';
import { until } from '../helpers/wait';
import { type SimDevice, waitDevicePid, workerStatus, devicePid } from './sim-devices';
import { faultDevice, startFaultBench } from './faults';
import {
  HANG_MS, HUNG, POOL, PROMPT_MS, assertHostEnds, assertPrompt, neighbourCycle, roundTrip, say,
} from './hung-host';

if (inPrivateMountNamespace()) {
  test(`${HUNG} hung closes in one device host (pool of ${POOL}): the disks still detach, a neighbour goes on, ` +
    'attaches, detaches and attaches again promptly, and the host still ends', async () => {
    const b = await startFaultBench('afsfile-hungclose-', [], { env: { UV_THREADPOOL_SIZE: String(POOL) } });
    const devs: SimDevice[] = [];
    try {
      const first = await faultDevice(b, 70, 'first.img', 1 << 20);
      devs.push(first);
      const host = await waitDevicePid(b.rig, first);
      const hung: SimDevice[] = [];
      for (let i = 0; i < HUNG; i++) {
        const d = await faultDevice(b, 71 + i, `hungclose${i}.img`, 1 << 20);
        devs.push(d);
        hung.push(d);
        await roundTrip(d, 1 + i);
      }
      assert.equal(hung.map((d) => devicePid(b.rig, d)), hung.map(() => host), 'one device host serves them all');

      // From now on every close(2) of their images waits; their removal closes them.
      await b.ffs.ctl(`hang close ${HANG_MS} hungclose`);
      let t0 = performance.now();
      const removed = await Promise.all(hung.map((d) => b.rig.ts.removeVbd(d.vbd, { timeoutMs: PROMPT_MS })));
      const removeMs = performance.now() - t0;
      assert.ok(removed.every((r) => r.closed), 'each disk whose close hangs still reached Closed');
      for (const d of hung) d.guest.close();
      await until('the closes hang', async () => ((await b.ffs.stats()).hung ?? 0) >= HUNG, PROMPT_MS);

      // The neighbour already attached: its requests are answered.
      t0 = performance.now();
      await roundTrip(first, 0x31);
      const ioMs = performance.now() - t0;
      // A new neighbour in the same process, and its image again.
      const { attachMs, detachMs, reattachMs } = await neighbourCycle(b, host, devs);
      const stillHung = (await b.ffs.stats()).hung ?? 0;
      const hosts = (workerStatus(b.rig) as { hosts?: Array<{ pid?: number }> }).hosts ?? [];
      say(`${stillHung} faultfs closes hung; ${HUNG} disks reached Closed in ${removeMs.toFixed(0)} ms; ` +
        `the neighbour's I/O took ${ioMs.toFixed(0)} ms; a new one attached in ${attachMs.toFixed(0)} ms, ` +
        `reached Closed in ${detachMs.toFixed(0)} ms, attached again in ${reattachMs.toFixed(0)} ms`);
      assert.ok(stillHung >= HUNG, `every hung close holds its own thread (${stillHung} hung)`);
      assert.equal(hosts.map((h) => h.pid), [host], 'still the one device host');
      assertPrompt([['removal of the hung disks', removeMs], ['I/O', ioMs], ['attach', attachMs],
        ['detach', detachMs], ['attach again', reattachMs]]);
      await assertHostEnds(host, 'closes');
    } finally {
      await b.ffs.ctl('clear').catch(() => undefined);
      for (const d of devs) d.guest.close();
      await b.close();
    }
  });

  test.run();
}
