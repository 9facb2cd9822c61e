// A device host (isolation = identity: every disk of the host identity in one process) whose
// images hang on close, more of them than libuv's thread pool has threads (a close that stores
// to a file server that never answers: OpenAFS stores dirty data at close, FUSE asks its daemon
// at every close): the closes run on threads of their own (src/native/thread-op.c), so the
// detached disks still reach Closed, a neighbour in the same process goes on with its I/O,
// attaches, detaches and attaches again promptly, and the process can still end while the
// closes hang. On faultfs (test/faultfs, `hang close`), in a private mount namespace.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BLOCK } from './verified-workload';
import { inPrivateMountNamespace } from '../helpers/faultfs';
import { until } from '../helpers/wait';
import { type SimDevice, devicePid, waitDevicePid, workerStatus } from './sim-devices';
import { faultDevice, startFaultBench } from './faults';
import * as fs from 'node:fs';

const say = (l: string): void => void process.stdout.write(`${l}\n`);
/** The device host's thread pool, set so the test knows it (src/engine/threadpool-size.ts). */
const POOL = 4;
/** Hung closes: more disks than the pool has threads. */
const HUNG = POOL + 2;
/** Long enough that nothing in the test can be explained by the hang ending. */
const HANG_MS = 150_000;
/** An attach, a removal or a request within this is prompt: the hang is many times longer. */
const PROMPT_MS = 25_000;

/** The state letter of a process (/proc/PID/stat), undefined once it is reaped. */
function procState(pid: number): string | undefined {
  try {
    return /^\d+ \(.*\) (\S)/s.exec(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

async function roundTrip(d: SimDevice, fill: number): Promise<void> {
  await d.front.write(0, new Uint8Array(BLOCK).fill(fill));
  assert.equal(await d.front.read(0, BLOCK), new Uint8Array(BLOCK).fill(fill), 'the block reads back');
}

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
      // A new neighbour in the same process.
      t0 = performance.now();
      const n = await faultDevice(b, 90, 'neighbour.img', 1 << 20, PROMPT_MS);
      devs.push(n);
      const attachMs = performance.now() - t0;
      assert.is(devicePid(b.rig, n), host, 'the neighbour is served by the same process');
      await roundTrip(n, 5);
      t0 = performance.now();
      const gone = await b.rig.ts.removeVbd(n.vbd, { timeoutMs: PROMPT_MS });
      const detachMs = performance.now() - t0;
      assert.ok(gone.closed, 'the neighbour reached Closed');
      n.guest.close();
      // The same image again: its lock (the close of the old one's descriptors) must be gone.
      t0 = performance.now();
      const again = await faultDevice(b, 91, 'neighbour.img', 1 << 20, PROMPT_MS);
      devs.push(again);
      const reattachMs = performance.now() - t0;
      await roundTrip(again, 6);
      const stillHung = (await b.ffs.stats()).hung ?? 0;
      const hosts = (workerStatus(b.rig) as { hosts?: Array<{ pid?: number }> }).hosts ?? [];
      say(`${stillHung} faultfs closes hung; ${HUNG} disks reached Closed in ${removeMs.toFixed(0)} ms; ` +
        `the neighbour's I/O took ${ioMs.toFixed(0)} ms; a new one attached in ${attachMs.toFixed(0)} ms, ` +
        `reached Closed in ${detachMs.toFixed(0)} ms, attached again in ${reattachMs.toFixed(0)} ms`);
      assert.ok(stillHung >= HUNG, `every hung close holds its own thread (${stillHung} hung)`);
      assert.equal(hosts.map((h) => h.pid), [host], 'still the one device host');
      for (const [what, ms] of [['removal of the hung disks', removeMs], ['I/O', ioMs], ['attach', attachMs],
        ['detach', detachMs], ['attach again', reattachMs]] as const) {
        assert.ok(ms < PROMPT_MS, `${what} took ${ms.toFixed(0)} ms`);
      }

      // The host ends while its closes hang: no thread of the process waits for them (those
      // threads wait in the kernel for faultfs's answer: the process may stay a zombie until
      // then, but its main thread has exited).
      t0 = performance.now();
      process.kill(host, 'SIGTERM');
      const state = await until('the device host ends', () => {
        const s = procState(host);
        return s === undefined || s === 'Z' || s === 'X' ? s ?? 'reaped' : undefined;
      }, PROMPT_MS).catch(() => `still ${procState(host)}`);
      say(`the host ended (${state}) ${(performance.now() - t0).toFixed(0)} ms after SIGTERM, its closes still hung`);
      assert.ok(state === 'reaped' || state === 'Z' || state === 'X', `the host did not end: ${state}`);
    } finally {
      await b.ffs.ctl('clear').catch(() => undefined);
      for (const d of devs) d.guest.close();
      await b.close();
    }
  });

  test.run();
}
