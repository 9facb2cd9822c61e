// A device host (isolation = identity: every disk of the host identity in one process) whose
// images hang on open, more of them than libuv's thread pool has threads: the open, lock and
// close of each image run on a thread of their own (src/native/thread-op.c), so a neighbour in
// the same process still attaches, detaches and attaches again promptly, and the process can
// still end while the opens hang. On faultfs (test/faultfs), in a private mount namespace.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BLOCK } from './verified-workload';
import { inPrivateMountNamespace } from '../helpers/faultfs';
import { until } from '../helpers/wait';
import { type SimDevice, devicePid, waitDevicePid, workerStatus } from './sim-devices';
import { faultDevice, imagePath, startFaultBench } from './faults';

const say = (l: string): void => void process.stdout.write(`${l}\n`);
/** The device host's thread pool, set so the test knows it (src/engine/threadpool-size.ts). */
const POOL = 4;
/** Hung opens: more than the pool has threads. */
const HUNG = POOL + 2;
/** Long enough that nothing in the test can be explained by the hang ending. */
const HANG_MS = 150_000;
/** An attach or a removal within this is prompt: the hang is many times longer. */
const PROMPT_MS = 25_000;

/** The state letter of a process (/proc/PID/stat), undefined once it is reaped. */
function procState(pid: number): string | undefined {
  try {
    return /^\d+ \(.*\) (\S)/s.exec(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

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

      let t0 = performance.now();
      const n = await faultDevice(b, 90, 'neighbour.img', 1 << 20, PROMPT_MS);
      devs.push(n);
      const attachMs = performance.now() - t0;
      assert.is(devicePid(b.rig, n), host, 'the neighbour is served by the same process');
      await n.front.write(0, new Uint8Array(BLOCK).fill(5));
      assert.equal(await n.front.read(0, BLOCK), new Uint8Array(BLOCK).fill(5));

      t0 = performance.now();
      const removed = await b.rig.ts.removeVbd(n.vbd, { timeoutMs: PROMPT_MS });
      const detachMs = performance.now() - t0;
      assert.ok(removed.closed, 'the neighbour reached Closed');
      n.guest.close();
      // The same image again: its lock (the close of the old one's descriptors) must be gone.
      t0 = performance.now();
      const again = await faultDevice(b, 91, 'neighbour.img', 1 << 20, PROMPT_MS);
      devs.push(again);
      const reattachMs = performance.now() - t0;
      await again.front.write(0, new Uint8Array(BLOCK).fill(6));
      assert.equal(await again.front.read(0, BLOCK), new Uint8Array(BLOCK).fill(6));
      const hung = (await b.ffs.stats()).hung ?? 0;
      say(`${hung} faultfs requests hung; the neighbour attached in ${attachMs.toFixed(0)} ms, reached Closed in ` +
        `${detachMs.toFixed(0)} ms, attached again in ${reattachMs.toFixed(0)} ms`);
      assert.ok(hung >= HUNG, `every hung image holds its own thread (${hung} hung)`);
      for (const [what, ms] of [['attach', attachMs], ['detach', detachMs], ['attach again', reattachMs]] as const) {
        assert.ok(ms < PROMPT_MS, `${what} took ${ms.toFixed(0)} ms`);
      }

      // The host ends while its opens hang: no thread of the process waits for them. (The hung
      // threads themselves wait in the kernel for faultfs's answer: the process is a zombie
      // until then, but its main thread has exited.)
      t0 = performance.now();
      process.kill(host, 'SIGTERM');
      const state = await until('the device host ends', () => {
        const s = procState(host);
        return s === undefined || s === 'Z' || s === 'X' ? s ?? 'reaped' : undefined;
      }, PROMPT_MS).catch(() => `still ${procState(host)}`);
      say(`the host ended (${state}) ${(performance.now() - t0).toFixed(0)} ms after SIGTERM, its opens still hung`);
      assert.ok(state === 'reaped' || state === 'Z' || state === 'X', `the host did not end: ${state}`);
    } finally {
      await b.ffs.ctl('clear').catch(() => undefined);
      for (const d of devs) d.guest.close();
      await b.close();
    }
  });

  test.run();
}
