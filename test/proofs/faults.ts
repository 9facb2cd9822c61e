// Faults in a real file system: images on faultfs (test/faultfs/faultfs.c, a FUSE file system
// that buffers writes until fsync/close as a network file system's client does), served by a
// real `afsfile worker --platform sim` to simulated guests running the verified workload.
//
// - fault windows mid-workload (each op and errno, 1-30 s): no guest error, and once the
//   guest's last FLUSH completes the BACKING file holds exactly what was acknowledged;
// - a window longer than --hold-timeout: only the requests issued in it fail;
// - a hung image: only its device stalls; other devices and new attaches go on.
//
// Run: node build/test/proofs/faults.js [--seconds-max 30] [--seed S] (npm run proof:faults,
// as root: it mounts FUSE in a private mount namespace). test/proofs/faults.test.ts is short.
import * as fs from 'node:fs';
import * as path from 'node:path';
import minimist from 'minimist';
import { type Faultfs, inPrivateMountNamespace, mountFaultfs } from '../helpers/faultfs';
import { setTimeout as sleep } from 'node:timers/promises';
import { until } from '../helpers/wait';
import { type WorkerRig, startWorkerRig } from '../helpers/worker-rig';
import { type SimDevice, attachSimDevice, quantile } from './sim-devices';
import { BLOCK, VerifiedWorkload, seeded } from './verified-workload';

export interface FaultWindow {
  readonly ops: string;
  /** An errno name, or 'hang'. */
  readonly err: string;
  readonly ms: number;
}

export interface WindowOutcome extends FaultWindow {
  readonly injected: number;
  readonly hung: boolean;
  /** Longest time the guest waited for any completion around the window. */
  readonly stallMs: number;
  readonly guestErrors: number;
}

export interface Bench {
  readonly rig: WorkerRig;
  readonly ffs: Faultfs;
  close(): Promise<void>;
}

/** A worker whose images live on a fresh faultfs (mounted in this process's namespace). */
export async function startFaultBench(prefix: string, workerArgs: string[] = [],
  o: { config?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Bench> {
  const rig = await startWorkerRig(prefix, { workerArgs, ...o });
  let ffs: Faultfs;
  try {
    ffs = await mountFaultfs(rig.dir);
  } catch (e) {
    await rig.close();
    throw e;
  }
  return {
    rig, ffs,
    close: async () => {
      await ffs.ctl('clear').catch(() => undefined);
      if (rig.worker.proc.exitCode === null) await rig.worker.stop('SIGTERM');
      await sleep(200); // device processes quiesce and close their images
      await ffs.stop();
      await rig.close();
    },
  };
}

/** Where an image lives below the backing dir or the mount: a directory of its own, as each
 * guest's image on AFS has its own volume (a lookup hung in a directory holds up the other
 * lookups in that directory, on FUSE as on a hung AFS volume). */
export function imagePath(root: string, name: string): string {
  return path.join(root, name.replace(/\.img$/, ''), name);
}

/** An image in the backing dir, attached through the mount. */
export async function faultDevice(b: Bench, domid: number, name: string, bytes: number,
  timeoutMs?: number): Promise<SimDevice> {
  const backing = imagePath(b.ffs.backing, name);
  fs.mkdirSync(path.dirname(backing), { recursive: true });
  fs.writeFileSync(backing, '');
  fs.truncateSync(backing, bytes);
  return attachSimDevice(b.rig, { domid, image: imagePath(b.ffs.mount, name), queueDepth: 16,
    ...(timeoutMs ? { timeoutMs } : {}) });
}

/**
 * Runs the verified workload on one device while the windows are injected one after another
 * (`gapMs` of clean I/O between); returns each window's outcome. The guest's last FLUSH then
 * must have stored everything: the backing file (not the mount) is checked exactly.
 */
export interface WindowsResult {
  readonly outcomes: WindowOutcome[];
  readonly errors: string[];
  readonly lost: string[];
  readonly writes: number;
  readonly flushes: number;
}

export async function runFaultWindows(b: Bench, windows: readonly FaultWindow[],
  o: { seed: number; gapMs: number; say: (l: string) => void }): Promise<WindowsResult> {
  const random = seeded(o.seed);
  const bytes = 8 << 20;
  const d = await faultDevice(b, 40, 'windows.img', bytes);
  const w = new VerifiedWorkload(d.front, { dev: 0, blocks: bytes / BLOCK, concurrency: 4, maxBlocks: 8,
    flushEvery: 16, random });
  w.start();
  const outcomes: WindowOutcome[] = [];
  try {
    await until('the workload runs', () => w.writes > 20, 10_000);
    for (const win of windows) {
      const before = (await b.ffs.stats()).faults ?? 0;
      const errs = w.errors.length;
      let stall = 0;
      let last = performance.now();
      const probe = setInterval(() => {
        const t = performance.now();
        stall = Math.max(stall, Math.min(t - last, t - w.lastCompletion));
        last = Math.max(last, w.lastCompletion);
      }, 20);
      await b.ffs.ctl(win.err === 'hang' ? `hang ${win.ops} ${win.ms} windows.img` : `fail ${win.ops} ${win.err} ` +
        `${win.ms} windows.img`);
      // The workload flushes every flushEvery writes; on a slow machine that can miss a short
      // window (CI once saw no fsync in 1 s), so a window on fsync gets FLUSHes of its own.
      const flusher = win.ops.includes('fsync') ? setInterval(() => {
        if (!w.flushing) w.flush().catch((e: Error) => w.errors.push(`flush in a window: ${e.message}`));
      }, Math.max(50, win.ms / 5)) : undefined;
      await sleep(win.ms);
      clearInterval(flusher);
      // The first completions after the window (held requests retried), then clean I/O.
      await sleep(o.gapMs);
      clearInterval(probe);
      const after = await b.ffs.stats();
      const out: WindowOutcome = { ...win, injected: (after.faults ?? 0) - before, hung: win.err === 'hang',
        stallMs: Math.round(stall), guestErrors: w.errors.length - errs };
      outcomes.push(out);
      o.say(`  ${win.err} on ${win.ops} for ${win.ms} ms: ` +
        `${win.err === 'hang' ? 'hung' : `${out.injected} faults injected`}, longest guest wait ${out.stallMs} ms, ` +
          `guest errors ${out.guestErrors}`);
      if (w.errors.length) break;
    }
    await w.stop().catch((e: Error) => w.errors.push(`final flush: ${e.message}`));
    const lost: string[] = [];
    if (!w.errors.length) {
      const r = w.checkImage(fs.readFileSync(imagePath(b.ffs.backing, 'windows.img')), true);
      for (const m of r.bad.slice(0,
        10)) lost.push(`block ${m.block}: backing file holds generation ${m.found}, acknowledged and flushed ` +
          `${m.acked}`);
      if (r.bad.length > 10) lost.push(`... ${r.bad.length} blocks in all`);
    }
    // What the worker said, with the guest's errors (the why is in the device's log).
    const errors = w.errors.length ? [...w.errors, 'worker log (end):',
      ...b.rig.worker.stderr().trim().split('\n').slice(-15)] : [];
    return { outcomes, errors, lost, writes: w.writes, flushes: w.flushes };
  } finally {
    await w.stop().catch(() => undefined);
    d.guest.close();
  }
}

/** Writes issued every `everyMs` (each its own block) with their issue time and outcome. */
export async function writesAcross(d: SimDevice, ms: number,
  everyMs: number): Promise<Array<{ at: number; done: number; ok: boolean }>> {
  const out: Array<Promise<{ at: number; done: number; ok: boolean }>> = [];
  const end = performance.now() + ms;
  for (let i = 0; performance.now() < end; i++) {
    const at = performance.now();
    const data = new Uint8Array(BLOCK).fill(i & 0xff);
    out.push(d.front.write((i % 1024) * 8, data).then(() => ({ at, done: performance.now(), ok: true }), () => ({ at,
      done: performance.now(), ok: false })));
    await sleep(everyMs);
  }
  return Promise.all(out);
}

export const ERRNOS = ['EACCES', 'ETIMEDOUT', 'EDQUOT', 'ENOSPC', 'EIO'] as const;

/** EIO is held for read and write only: a failed fsync with EIO reaches the guest by design
 * (engine/transient.ts), so fsync windows use the other errnos. */
export function windowsFor(ops: readonly string[], lengthsMs: readonly number[], random: () => number): FaultWindow[] {
  const out: FaultWindow[] = [];
  for (const op of ops) {
    for (const err of [...ERRNOS, 'hang']) {
      if (err === 'EIO' && op.includes('fsync')) continue;
      out.push({ ops: op, err, ms: lengthsMs[Math.floor(random() * lengthsMs.length)]! });
    }
  }
  return out;
}

if (require.main === module && inPrivateMountNamespace()) {
  const a = minimist(process.argv.slice(2), { default: { 'seconds-max': 30, seed: Date.now() % 1e9 } });
  const seed = Number(a.seed);
  const max = Number(a['seconds-max']);
  const lengths = [1, 2, 5, 10, 20, 30].filter((s) => s <= max).map((s) => s * 1000);
  const say = (l: string): void => void process.stdout.write(`${l}\n`);
  (async () => {
    const b = await startFaultBench('afsfile-faults-');
    try {
      const windows = windowsFor(['write', 'fsync', 'read', 'open,read,write,fsync'], lengths, seeded(seed));
      say(`fault windows: seed ${seed}, ${windows.length} windows of ${lengths.map((l) => l / 1000).join('/')} s`);
      const r = await runFaultWindows(b, windows, { seed, gapMs: 1500, say });
      const injected = r.outcomes.reduce((s, x) => s + x.injected, 0);
      say(`windows ${r.outcomes.length}, faults injected ${injected}, guest errors ${r.errors.length}, blocks lost ` +
        `${r.lost.length}, ` +
        `writes ${r.writes}, flushes ${r.flushes}; longest guest wait median ` +
          `${quantile(r.outcomes.map((x) => x.stallMs), 0.5)} ms`);
      if (r.errors.length || r.lost.length) {
        say(`FAILED (replay: --seed ${seed})\n${[...r.errors, ...r.lost].join('\n')}`);
        process.exitCode = 1;
      }
    } finally {
      await b.close();
    }
  })().catch((e: Error) => {
    say(`FAILED (replay: --seed ${seed}): ${e.stack ?? e}`);
    process.exitCode = 1;
  });
}
