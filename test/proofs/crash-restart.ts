// Crash restart at scale: simulated guests (this process) run a verified write+flush workload
// through a real `afsfile worker --platform sim` while device processes are killed with
// SIGKILL at random moments, and the supervisor itself is killed too. Each killed device
// process must be restarted and re-attach to the live ring, the guests must see no error, and
// every write acknowledged before the last completed FLUSH must be in the image (checked in
// the image file after every kill, and exactly at the end).
//
// Run: node build/test/proofs/crash-restart.js [--kills 100] [--devices 6] [--supervisor-kills 2] [--seed S]
// (npm run proof:crash). test/proofs/crash-restart.test.ts runs a short version.
import * as fs from 'node:fs';
import minimist from 'minimist';
import { setTimeout as sleep } from 'node:timers/promises';
import { until } from '../helpers/wait';
import { type RunningWorker, startWorker } from '../helpers/worker';
import { type WorkerRig, startWorkerRig } from '../helpers/worker-rig';
import { type SimDevice, alive, attachSimDevice, devicePid, quantile, waitDevicePid } from './sim-devices';
import { BLOCK, VerifiedWorkload, seeded } from './verified-workload';

export interface CrashOptions {
  readonly devices: number;
  readonly kills: number;
  readonly supervisorKills: number;
  readonly seed: number;
  readonly imageBytes: number;
  /** Random pause between kills, ms. */
  readonly gapMs: readonly [number, number];
  readonly say: (line: string) => void;
}

export interface CrashFigures {
  kills: number;
  restartsSurvived: number;
  supervisorKills: number;
  adopted: number;
  /** Kill -> the supervisor reports a new running device process (for every device the killed
   * process served). */
  reattachMs: number[];
  /** Kill -> the guest's next completed request on that device. */
  resumeMs: number[];
  /** Supervisor kill -> every device's guest completed a request again. */
  adoptMs: number[];
  writes: number;
  flushes: number;
  bytes: number;
  imageChecks: number;
  guestErrors: string[];
  lost: string[];
}

/** The promise's value, or undefined after ms (the timer does not outlive the race). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

/** The device processes' restart policy allows 5 crashes a minute; kills stay within it. */
const POLICY_CRASHES = 5;
const POLICY_WINDOW_MS = 61_000;

export async function runCrashRestart(o: CrashOptions): Promise<CrashFigures> {
  const random = seeded(o.seed);
  o.say(`crash restart: seed ${o.seed}, ${o.devices} devices, ${o.kills} device kills, ${o.supervisorKills} ` +
    `supervisor kills`);
  const rig = await startWorkerRig('afsfile-crash-');
  let worker: RunningWorker = rig.worker;
  const devs: SimDevice[] = [];
  const loads: VerifiedWorkload[] = [];
  const f: CrashFigures = {
    kills: 0, restartsSurvived: 0, supervisorKills: 0, adopted: 0, reattachMs: [], resumeMs: [], adoptMs: [],
    writes: 0, flushes: 0, bytes: 0, imageChecks: 0, guestErrors: [], lost: [],
  };
  const killTimes: number[][] = [];
  const checkImage = (i: number, exact: boolean): void => {
    const w = loads[i]!;
    const durable = w.durable.slice();
    const image = fs.readFileSync(devs[i]!.image);
    const r = w.checkImage(image, exact, durable);
    f.imageChecks++;
    for (const m of r.bad.slice(0, 5)) {
      f.lost.push(`device ${i} block ${m.block}: image holds generation ${m.found}, durable ${m.durable}, ` +
        `acknowledged ${m.acked}`);
    }
    if (r.bad.length) throw new Error(`device ${i}: ${r.bad.length} blocks lost or torn:\n${f.lost.join('\n')}`);
  };
  const guestErrors = (): string[] => loads.flatMap((w, i) => w.errors.map((e) => `device ${i}: ${e}`));
  try {
    for (let i = 0; i < o.devices; i++) {
      const d = await attachSimDevice(rig, { domid: 20 + i, size: o.imageBytes, queueDepth: 16 });
      devs.push(d);
      const w = new VerifiedWorkload(d.front, { dev: i, blocks: o.imageBytes / BLOCK, concurrency: 8, maxBlocks: 16,
        flushEvery: 24, random });
      loads.push(w);
      killTimes.push([]);
      w.start();
    }
    await until('every device did some writes', () => loads.every((w) => w.writes > 10), 20_000);

    // Supervisor kills are spread among the device kills.
    const supervisorAt = new Set(Array.from({ length: o.supervisorKills },
      (_, k) => Math.floor(((k + 1) * o.kills) / (o.supervisorKills + 1))));
    for (let k = 0; k < o.kills; k++) {
      if (guestErrors().length) break;
      await sleep(o.gapMs[0] + random() * (o.gapMs[1] - o.gapMs[0]));
      let now = Date.now();
      // A device whose restart policy has room (the supervisor gives up after 5 a minute), and
      // that of every device sharing its process (isolation: a kill crashes them all).
      const sharing = (i: number): number[] => {
        const p = devicePid(rig, devs[i]!);
        return devs.flatMap((d, j) => (j === i || (p !== undefined && devicePid(rig, d) === p) ? [j] : []));
      };
      const room = (j: number): boolean => killTimes[j]!.filter((x) => x > Date.now() - POLICY_WINDOW_MS).length <
        POLICY_CRASHES;
      const eligible = () => devs.map((_, i) => i).filter((i) => sharing(i).every(room));
      while (!eligible().length) await sleep(200);
      const choices = eligible();
      const i = choices[Math.floor(random() * choices.length)]!;
      const pid = await waitDevicePid(rig, devs[i]!);
      const hit = sharing(i);
      now = Date.now();
      const t0 = performance.now();
      process.kill(pid, 'SIGKILL');
      for (const j of hit) killTimes[j]!.push(now);
      f.kills++;
      await until(`device process ${pid} gone`, () => !alive(pid), 5000);
      for (const j of hit) checkImage(j, false);
      let pid2 = 0;
      for (const j of hit) pid2 = await waitDevicePid(rig, devs[j]!, pid, 30_000);
      f.reattachMs.push(performance.now() - t0);
      // Responses the dead process had written may still be arriving here: the first
      // completion once the new process runs is what counts.
      const t1 = await within(Promise.all(hit.map((j) => loads[j]!.nextCompletion())), 30_000);
      if (t1 === undefined) throw new Error(`devices ${hit.join(', ')}: no request completed within 30 s of killing ` +
        `${pid} (new process ${pid2})`);
      f.resumeMs.push(Math.max(...t1) - t0);
      f.restartsSurvived++;
      if ((k + 1) % 10 === 0) o.say(`  ${k + 1} kills: re-attach median ${quantile(f.reattachMs, 0.5).toFixed(0)} ` +
        `ms, max ${Math.max(...f.reattachMs).toFixed(0)} ms; writes ${loads.reduce((s, w) => s + w.writes, 0)}`);

      if (supervisorAt.has(k)) {
        const before = devs.map((d) => devicePid(rig, d));
        const s0 = performance.now();
        await worker.stop('SIGKILL');
        f.supervisorKills++;
        // Its device processes notice and quiesce; they keep the image lock until the next
        // worker's processes adopt it, then leave.
        worker = await startWorker(rig.xs.socketPath, rig.runDir, [], rig.exe);
        for (const p of before) if (p !== undefined) await until(`orphaned device process ${p} leaves`,
          () => !alive(p), 30_000);
        for (let j = 0; j < devs.length; j++) {
          await waitDevicePid(rig, devs[j]!, before[j], 30_000);
          f.adopted++;
        }
        // Requests answered while the old processes quiesced do not count: the first
        // completion once every device has its new process does.
        const all = await within(Promise.all(loads.map((w) => w.nextCompletion())), 30_000);
        if (!all) throw new Error('after the supervisor kill, not every device completed a request within 30 s');
        f.adoptMs.push(Math.max(...all) - s0);
        for (let j = 0; j < devs.length; j++) checkImage(j, false);
        // The new supervisor's restart policies start empty.
        for (const t of killTimes) t.length = 0;
        o.say(`  supervisor killed: ${devs.length} devices adopted, every guest's I/O resumed after ` +
          `${f.adoptMs.at(-1)!.toFixed(0)} ms`);
      }
    }
    await Promise.all(loads.map((w) => w.stop().catch((e: Error) => w.errors.push(`final flush: ${e.message}`))));
    f.guestErrors.push(...guestErrors());
    if (!f.guestErrors.length) for (let i = 0; i < devs.length; i++) checkImage(i, true);
    for (const w of loads) {
      f.writes += w.writes;
      f.flushes += w.flushes;
      f.bytes += w.bytesWritten;
    }
    return f;
  } finally {
    await stopAll(rig, worker, devs, loads);
  }
}

/** Ends the workloads, the worker and its device processes (which write into the rig's dir
 * until they exit), then the rig. */
export async function stopAll(rig: WorkerRig, worker: RunningWorker, devs: SimDevice[],
  loads: VerifiedWorkload[]): Promise<void> {
  for (const w of loads) w.stop().catch(() => undefined);
  const pids = devs.map((d) => devicePid(rig, d)).filter((p): p is number => p !== undefined);
  if (worker.proc.exitCode === null && worker.proc.signalCode === null) await within(worker.stop('SIGTERM'), 10_000);
  for (const p of pids) {
    await until(`device process ${p} exits`, () => !alive(p), 10_000).catch(() => process.kill(p, 'SIGKILL'));
  }
  for (const d of devs) d.guest.close();
  await rig.close(worker);
}

export function describe(f: CrashFigures): string {
  const ms = (v: number[]): string => v.length ? `median ${quantile(v, 0.5).toFixed(0)} ms, max ` +
    `${Math.max(...v).toFixed(0)} ms` : 'n/a';
  return [
    `restarts survived: ${f.restartsSurvived}/${f.kills} device kills; supervisor kills ${f.supervisorKills}, ` +
      `devices adopted ${f.adopted}`,
    `re-attach (kill -> new device process running): ${ms(f.reattachMs)}`,
    `guest I/O resumed (kill -> first completion from the new process): ${ms(f.resumeMs)}`,
    `supervisor kill -> every device adopted and its guest's I/O resumed: ${ms(f.adoptMs)}`,
    `workload: ${f.writes} writes (${(f.bytes / 2 ** 20).toFixed(0)} MiB), ${f.flushes} flushes; image checks ` +
      `${f.imageChecks}; guest errors ${f.guestErrors.length}; blocks lost ${f.lost.length}`,
  ].join('\n');
}

if (require.main === module) {
  const a = minimist(process.argv.slice(2), { default: { kills: 100, devices: 6, 'supervisor-kills': 2,
    seed: Date.now() % 1e9, 'image-mib': 16 } });
  const o: CrashOptions = {
    devices: Number(a.devices), kills: Number(a.kills), supervisorKills: Number(a['supervisor-kills']),
      seed: Number(a.seed),
    imageBytes: Number(a['image-mib']) * 2 ** 20, gapMs: [200, 2500], say: (l) => process.stdout.write(`${l}\n`),
  };
  runCrashRestart(o).then((f) => {
    process.stdout.write(`${describe(f)}\n`);
    const ok = !f.guestErrors.length && !f.lost.length && f.restartsSurvived === o.kills
      && f.adopted === o.devices * o.supervisorKills;
    if (!ok) process.stdout.write(`FAILED (replay: --seed ${o.seed})\n${f.guestErrors.slice(0, 10).join('\n')}\n`);
    process.exit(ok ? 0 : 1);
  }, (err: Error) => {
    process.stdout.write(`FAILED (replay: --seed ${o.seed}): ${err.stack ?? err}\n`);
    process.exit(1);
  });
}
