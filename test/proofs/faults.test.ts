// Faults in a real file system (test/proofs/faults.ts), short: 1 s windows of each kind, a
// window past --hold-timeout, a hung image beside healthy ones. Runs in a private mount
// namespace (its FUSE mounts are nobody else's). The full range (1-30 s, every op and errno)
// is `npm run proof:faults`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { inPrivateMountNamespace } from '../helpers/faultfs';
import { setTimeout as sleep } from 'node:timers/promises';
import { testIf } from '../helpers/skip';
import { until } from '../helpers/wait';
import { type Bench, faultDevice, runFaultWindows, startFaultBench, writesAcross } from './faults';

import type { SimDevice } from './sim-devices';
import { BLOCK, VerifiedWorkload, seeded } from './verified-workload';

const say = (l: string): void => void process.stdout.write(`${l}\n`);

if (inPrivateMountNamespace()) {
  const windowsName = 'fault windows mid-workload (each errno, each op, a hang): no guest error, ' +
    'the backing file holds every flushed write';
  test(windowsName, async () => {
    const seed = Date.now() % 1e9;
    const b = await startFaultBench('afsfile-faults-');
    try {
      const r = await runFaultWindows(b, [
        { ops: 'write', err: 'EACCES', ms: 1000 },
        { ops: 'fsync', err: 'EDQUOT', ms: 1000 },
        { ops: 'read', err: 'ETIMEDOUT', ms: 1000 },
        { ops: 'write,fsync', err: 'ENOSPC', ms: 1000 },
        { ops: 'read,write', err: 'EIO', ms: 1000 },
        { ops: 'open,read,write,fsync', err: 'hang', ms: 1000 },
      ], { seed, gapMs: 400, say });
      assert.equal(r.errors, [], `guest errors (seed ${seed})`);
      assert.equal(r.lost, [], `lost after the final FLUSH (seed ${seed})`);
      assert.equal(r.outcomes.filter((x) => !x.hung && x.injected === 0).map((x) => `${x.err} on ${x.ops}`), [],
        'windows that hit no request');
      assert.ok(r.outcomes.every((x) => x.stallMs >= 500),
        'the guest waited through every window (nothing was answered from nowhere)');
    } finally {
      await b.close();
    }
  });

  test('a window longer than --hold-timeout fails only the requests issued in it', async () => {
    const b: Bench = await startFaultBench('afsfile-hold-', ['--hold-timeout', '2']);
    try {
      const d = await faultDevice(b, 41, 'hold.img', 4 << 20);
      const w0 = performance.now() + 1000;
      const w1 = w0 + 4000;
      const sending = writesAcross(d, 7000, 100);
      await sleep(1000);
      await b.ffs.ctl('fail write ETIMEDOUT 4000 hold.img');
      const r = await sending;
      await d.front.flush();
      const failed = r.filter((x) => !x.ok);
      say(`hold-timeout 2 s, a 4 s ETIMEDOUT window on writes: ${r.length} writes, ${failed.length} failed; ` +
        `failures issued ${failed.length ? `${((failed[0]!.at - w0) / 1000).toFixed(1)}..` +
          `${((failed.at(-1)!.at - w0) / 1000).toFixed(1)} s` : '-'} into the window, ` +
        `answered after ${failed.length ? Math.min(...failed.map((x) => x.done - x.at)).toFixed(0) : '-'} ms at the ` +
          `least`);
      assert.ok(failed.length > 0, 'requests held past hold-timeout fail');
      for (const x of failed) {
        assert.ok(x.at > w0 - 2500 && x.at < w1,
          `a failed write was issued ${(x.at - w0).toFixed(0)} ms from the window start`);
        assert.ok(x.done - x.at >= 1900, `a failed write was answered after only ${(x.done - x.at).toFixed(0)} ms`);
      }
      assert.ok(r.filter((x) => x.at > w1 + 100).every((x) => x.ok), 'every write issued after the window succeeded');
      assert.ok(r.filter((x) => x.at < w0 - 200).every((x) => x.ok), 'every write issued before the window succeeded');
      d.guest.close();
    } finally {
      await b.close();
    }
  });

  // Judged by progress, not by time: on a loaded 2-core machine (or a busy disk under the
  // backing dir) the neighbour may complete only a handful of requests a second, so "more than
  // N in 2.5 s" failed there; and a failure that left the guests open kept the file's process
  // alive until the runner's timeout (the "hang" CI once saw). The hang lasts until `clear`.
  test('a hung image stalls only its own device: its neighbour goes on, the supervisor runs, nothing fails after',
    async () => {
    const b = await startFaultBench('afsfile-hung-');
    const devs: SimDevice[] = [];
    try {
      // Its requests wait as long as the hang lasts: the simulated blkfront must not time out first.
      const hungDev = await faultDevice(b, 42, 'hung.img', 4 << 20, 180_000);
      devs.push(hungDev);
      const okDev = await faultDevice(b, 43, 'ok.img', 4 << 20);
      devs.push(okDev);
      const random = seeded(1);
      const wh = new VerifiedWorkload(hungDev.front, { dev: 0, blocks: 1024, concurrency: 4, maxBlocks: 4,
        flushEvery: 8, random });
      const wo = new VerifiedWorkload(okDev.front, { dev: 1, blocks: 1024, concurrency: 4, maxBlocks: 4, flushEvery: 8,
        random });
      const done = (w: VerifiedWorkload): number => w.writes + w.reads + w.flushes;
      wh.start();
      wo.start();
      await until('both devices run', () => done(wh) > 10 && done(wo) > 10, 20_000);
      await b.ffs.ctl('hang stat,open,read,write,fsync 600000 hung.img');
      // What was past faultfs when the hang began may still complete: wait until nothing has
      // for a second.
      let last = done(wh);
      let quietSince = performance.now();
      await until('the hung device stops completing', () => {
        if (done(wh) !== last) [last, quietSince] = [done(wh), performance.now()];
        return performance.now() - quietSince > 1000;
      }, 30_000);
      const hungBefore = done(wh);
      const okBefore = done(wo);
      const t0 = performance.now();
      await until('its neighbour completes 50 requests', () => done(wo) >= okBefore + 50, 60_000);
      const secs = (performance.now() - t0) / 1000;
      say(`hung image: ${done(wh) - hungBefore} completions on it while its neighbour did ${done(wo) - okBefore} ` +
        `(${secs.toFixed(1)} s)`);
      assert.is(done(wh) - hungBefore, 0, 'the hung image completes nothing');
      assert.ok(b.rig.worker.proc.exitCode === null, 'the supervisor runs');
      const status = await b.rig.c.tryRead(`${okDev.vbd.backend}/state`);
      assert.is(status, '4', 'the neighbour stays Connected');
      await b.ffs.ctl('clear');
      await until('the hung device resumes', () => done(wh) > hungBefore + 10, 30_000);
      await Promise.all([wh.stop(), wo.stop()]);
      assert.equal([...wh.errors, ...wo.errors], []);
    } finally {
      for (const d of devs) d.guest.close();
      await b.close();
    }
  });

  // Found by this test (issue 19): a supervisor that kept every image open handed them to each
  // device process it spawned, whose exec closed them (O_CLOEXEC): a close is a FUSE FLUSH (on
  // OpenAFS afs_linux_flush, which stores dirty data), and uv_spawn waits for that exec on the
  // main thread, so one hung image with dirty data stalled every attach and restart. Now no
  // process that starts device processes holds an image (src/worker/spawner.ts).
  test('new attaches go on while an image with dirty data hangs, and while another open hangs', async () => {
    const b = await startFaultBench('afsfile-hung-');
    try {
      const hungDev = await faultDevice(b, 42, 'hung.img', 4 << 20);
      // Dirty data on the hung image: written, not yet stored.
      await hungDev.front.write(0, new Uint8Array(BLOCK).fill(3));
      // Hangs of 15 s, an attach allowed 10 s: room for a slow process start on a loaded
      // machine, and still well inside the hang.
      await b.ffs.ctl('hang stat,open,read,write,fsync 15000 hung.img');
      await b.ffs.ctl('hang stat,open 15000 hung-open.img');
      const t0 = performance.now();
      const stuck = faultDevice(b, 44, 'hung-open.img', 1 << 20, 40_000);
      stuck.catch(() => undefined);
      const fresh = await faultDevice(b, 45, 'fresh.img', 1 << 20, 10_000);
      const attachMs = performance.now() - t0;
      assert.ok(attachMs < 14_000, `attached in ${attachMs.toFixed(0)} ms: within the hang`);
      say(`a new device attached in ${attachMs.toFixed(0)} ms while an image hung and another's open hung`);
      await fresh.front.write(0, new Uint8Array(BLOCK).fill(7));
      assert.equal(await fresh.front.read(0, BLOCK), new Uint8Array(BLOCK).fill(7));
      const late = await stuck;
      await late.front.write(0, new Uint8Array(BLOCK).fill(9));
      for (const d of [hungDev, fresh, late]) d.guest.close();
    } finally {
      await b.close();
    }
  });

  // Defect 0 of issue 19 (reliab's): a store that fails with EDQUOT drops the buffered data,
  // as the OpenAFS client does, and the next fsync succeeds; afsfile must rewrite what it
  // acknowledged since the last good fsync before it answers FLUSH. Enabled once that fix is
  // on main (AFSFILE_TEST_DROP_DATA=1 runs it before).
  const dropDataFixed = true;
  const dropTest = testIf(dropDataFixed || process.env.AFSFILE_TEST_DROP_DATA === '1',
    'runs with AFSFILE_TEST_DROP_DATA=1');
  dropTest('a failed store that drops the buffered data loses nothing the guest flushed', async () => {
    const seed = Date.now() % 1e9;
    const b = await startFaultBench('afsfile-drop-');
    try {
      await b.ffs.ctl('drop on');
      const r = await runFaultWindows(b, [
        { ops: 'fsync', err: 'EDQUOT', ms: 1500 },
        { ops: 'fsync', err: 'EACCES', ms: 1500 },
      ], { seed, gapMs: 500, say });
      const st = await b.ffs.stats();
      say(`drop-data: ${st.failed_stores} failed stores dropped ${st.dropped_bytes} bytes`);
      assert.ok((st.dropped_bytes ?? 0) > 0, 'the file system dropped buffered data');
      assert.equal(r.errors, [], `guest errors (seed ${seed})`);
      assert.equal(r.lost, [], `lost after the final FLUSH (seed ${seed})`);
    } finally {
      await b.close();
    }
  });

  test.run();
}
