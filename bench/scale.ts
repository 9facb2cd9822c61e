// The cost of an attached disk against N (issue 21's goal: an idle disk <= 1.25 MiB of dom0
// memory, kernel blkback's one ring page, and ~0 idle CPU). For each N: the real xenstored,
// `afsfile worker --platform sim`, N simulated guests in this process with one Linux-default
// blkfront each (one queue, ring order 0, 32 indirect segments), a little verified I/O per disk
// (and an optional write burst), then after a settle time: PSS/USS, anonymous memory, page
// tables, threads and kernel stacks of the supervisor and of every device process, and their
// CPU time and wakeups over an idle window. The slope over N is the marginal cost of a disk.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SimBlkfront } from '../src/sim/blkfront';
import { SimGuest } from '../src/sim/guest';
import { Toolstack, type VbdPaths } from '../src/sim/toolstack';
import { type XenStoreClient, connectXenStore } from '../src/xen/xenstore-client';
import { pattern } from '../test/helpers/pattern';
import { type RunningWorker, startWorker } from '../test/helpers/worker';
import { type Xenstored, startXenstored } from '../test/helpers/xenstored';
import { KERNEL_STACK_KIB, type MemorySample, cpuBetween, fit, kernelMemory, sampleCpu, sampleMemory } from './proc-sample';
import { type Row, progress } from './report';
import { summarize } from './stats';

export interface ScaleOptions {
  /** Numbers of disks, one run each (ascending). */
  readonly counts: readonly number[];
  /** Seconds after the I/O before memory is sampled (lets idle-time release happen). */
  readonly settleSeconds: number;
  /** The idle window CPU time and wakeups are measured over. */
  readonly idleSeconds: number;
  /** MiB each disk writes before the settle time (0: only the small verified I/O). */
  readonly burstMiB: number;
  /** Disks kept busy (128 KiB writes, 16 in flight each) while memory is sampled once, before
   * the settle time: a dom0 with some busy guests among idle ones (0: none). */
  readonly busy?: number;
  /** Seconds of that load before the sample. */
  readonly busySeconds?: number;
  /** The executable to measure (default dist/afsfile): compare builds in one run. */
  readonly exe?: string;
  readonly workerArgs?: readonly string[];
}

export interface ScalePoint {
  disks: number;
  exe: string;
  /** The supervisor alone. */
  supervisor: MemorySample;
  /** Every device process (and the spare). */
  devices: MemorySample[];
  /** Sums over all processes, KiB. */
  pssKiB: number;
  ussKiB: number;
  /** Page tables + kernel stacks of all processes (what /proc shows per process). */
  kernelKiB: number;
  threads: number;
  processes: number;
  /** Host-wide kernel memory change since before the worker started (noisy: other processes). */
  hostKernelDeltaKiB: { slab: number; kernelStack: number; pageTables: number };
  /** Over the idle window, all processes: CPU as % of one CPU, wakeups per second. */
  idleCpuPct: number;
  wakeupsPerS: number;
  supervisorWakeupsPerS: number;
  /** With `busy`: the sums over all processes while that many disks were busy, and the MiB/s
   * they wrote together. */
  busy?: { disks: number; pssKiB: number; ussKiB: number; kernelKiB: number; writeMiBs: number };
}

const ROOT = path.resolve(__dirname, '../..');
/** Frontends per XenStore connection (cxenstored limits watches per connection). */
const FRONTS_PER_CLIENT = 20;
/** Attaches at a time (each starts a process: bounded so a 2-CPU host keeps up). */
const ATTACH_PARALLEL = 8;
const IMAGE_BYTES = 64 << 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eachLimited<T>(items: readonly T[], limit: number, f: (t: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await f(items[i]!, i);
    }
  });
  await Promise.all(lanes);
}

async function waitUntil(what: string, ms: number, pred: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`scale: ${what}: not within ${ms} ms`);
    await sleep(20);
  }
}

/** The pid in each device's status file (a process serving several devices once per device). */
function devicePids(runDir: string): number[] {
  const dir = path.join(runDir, 'status');
  const pids: number[] = [];
  for (const n of fs.readdirSync(dir)) {
    if (!n.startsWith('dev-') || !n.endsWith('.json')) continue;
    try {
      const pid = (JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')) as { pid?: unknown }).pid;
      if (typeof pid === 'number') pids.push(pid);
    } catch {
      // Being rewritten: the caller retries.
    }
  }
  return pids;
}

/** The spare device process's pid (the supervisor's status file). */
function spareOf(runDir: string): number | undefined {
  try {
    const w = JSON.parse(fs.readFileSync(path.join(runDir, 'status/worker.json'), 'utf8')) as { spare?: { pid?: unknown } };
    return typeof w.spare?.pid === 'number' ? w.spare.pid : undefined;
  } catch {
    return undefined;
  }
}

/** A busy host can fill xenstored's listen backlog for a moment (EAGAIN): try again. */
async function connectRetrying(socketPath: string): Promise<XenStoreClient> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await connectXenStore({ env: { XENSTORED_PATH: socketPath } });
    } catch (e) {
      if (attempt >= 20) throw e;
      await sleep(100 * attempt);
    }
  }
}

export async function measureScale(disks: number, o: ScaleOptions): Promise<ScalePoint> {
  const exe = o.exe ?? path.join(ROOT, 'dist/afsfile');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'afsfile-bench-scale-'));
  const runDir = path.join(tmp, 'run');
  const simDir = path.join(tmp, 'sim'); // where test/helpers/worker.ts points AFSFILE_SIM_DIR
  fs.mkdirSync(simDir, { recursive: true });
  let xsd: Xenstored | undefined;
  let worker: RunningWorker | undefined;
  const clients: XenStoreClient[] = [];
  const guests: SimGuest[] = [];
  const fronts: SimBlkfront[] = [];
  try {
    xsd = await startXenstored();
    const kernelBefore = kernelMemory();
    worker = await startWorker(xsd.socketPath, runDir, [...(o.workerArgs ?? [])], exe);
    for (let i = 0; i < Math.ceil(disks / FRONTS_PER_CLIENT); i++) clients.push(await connectRetrying(xsd.socketPath));
    const ids = Array.from({ length: disks }, (_, i) => i + 1);
    let attached = 0;
    await eachLimited(ids, ATTACH_PARALLEL, async (domid, i) => {
      const c = clients[Math.floor(i / FRONTS_PER_CLIENT)]!;
      const ts = new Toolstack(c);
      const guest = new SimGuest({ domid, dir: simDir, pages: 1024 });
      guests.push(guest);
      await guest.listen();
      const image = path.join(tmp, `disk${domid}.img`);
      fs.writeFileSync(image, '');
      fs.truncateSync(image, IMAGE_BYTES);
      await ts.createDomain(domid);
      const vbd: VbdPaths = await ts.addVbd({ domid, target: image });
      // Linux defaults: one queue (one vCPU), ring order 0, 32 indirect segments.
      const front = new SimBlkfront({ xs: c, guest, devid: vbd.devid, timeoutMs: 60_000 });
      fronts.push(front);
      const connecting = front.connect();
      await waitUntil(`disk ${domid} opened`, 60_000, async () => (await c.tryRead(`${vbd.backend}/afsfile-status`)) === 'opened');
      await ts.hotplugConnected(vbd); // what block-afsfile add writes
      await connecting;
      // A little verified I/O, as a guest's boot does: every disk must really work.
      const data = pattern(65536, domid);
      for (let k = 0; k < 4; k++) await front.write(k * 128, data);
      for (let k = 0; k < 4; k++) {
        const back = await front.read(k * 128, 65536);
        if (!Buffer.from(back).equals(Buffer.from(data))) throw new Error(`scale: disk ${domid}: read back differs`);
      }
      attached++;
      if (attached % 16 === 0 || attached === disks) progress(`scale: ${attached}/${disks} disks attached`);
    });
    if (o.burstMiB > 0) {
      progress(`scale: ${disks} disks write ${o.burstMiB} MiB each`);
      const chunk = pattern(128 * 1024, 7);
      await eachLimited(fronts, 4, async (front) => {
        const writes = (o.burstMiB * 1024 * 1024) / chunk.length;
        let k = 0;
        await Promise.all(Array.from({ length: 16 }, async () => {
          while (k < writes) await front.write(((k++ * chunk.length) % IMAGE_BYTES) / 512, chunk);
        }));
      });
    }
    let busy: ScalePoint['busy'];
    const nBusy = Math.min(o.busy ?? 0, disks);
    if (nBusy > 0) {
      progress(`scale: ${nBusy} of ${disks} disks busy for ${o.busySeconds ?? 10} s`);
      const chunk = pattern(128 * 1024, 9);
      let stop = false;
      let bytes = 0;
      const loads = fronts.slice(0, nBusy).map((front, i) => Promise.all(Array.from({ length: 16 }, async (_, k) => {
        let n = k;
        while (!stop) {
          await front.write(((i * 7919 + n++ * 16) * chunk.length % IMAGE_BYTES) / 512, chunk);
          bytes += chunk.length;
        }
      })));
      const t0 = performance.now();
      await sleep((o.busySeconds ?? 10) * 1000);
      const pidsNow = [...new Set(devicePids(runDir))];
      const mem = [worker.proc.pid!, ...pidsNow].map((p) => sampleMemory(p, simDir))
        .filter((m): m is MemorySample => !!m);
      const mibs = bytes / 2 ** 20 / ((performance.now() - t0) / 1000);
      stop = true;
      await Promise.all(loads);
      busy = {
        disks: nBusy, writeMiBs: mibs,
        pssKiB: mem.reduce((a, m) => a + m.pssKiB, 0), ussKiB: mem.reduce((a, m) => a + m.ussKiB, 0),
        kernelKiB: mem.reduce((a, m) => a + m.pteKiB + m.threads * KERNEL_STACK_KIB, 0),
      };
      progress(`scale: ${nBusy} busy of ${disks}: PSS ${f1(mib(busy.pssKiB))} MiB, ${f1(mibs)} MiB/s written`);
    }
    progress(`scale: ${disks} disks attached; settling ${o.settleSeconds} s`);
    await sleep(o.settleSeconds * 1000);
    let pids: number[] = [];
    await waitUntil('a status file per device', 10_000, () => (pids = devicePids(runDir)).length === disks);
    // A process serving several devices is counted once. The spare waiting for the next
    // attach is part of what the worker costs: counted with the device processes.
    const spare = spareOf(runDir);
    pids = [...new Set([...pids, ...(spare === undefined ? [] : [spare])])];
    const supPid = worker.proc.pid!;
    const all = [supPid, ...pids];
    const cpu0 = all.map((p) => sampleCpu(p));
    progress(`scale: ${disks} disks idle for ${o.idleSeconds} s`);
    await sleep(o.idleSeconds * 1000);
    const cpu1 = all.map((p) => sampleCpu(p));
    const d = all.map((_, i) => cpuBetween(cpu0[i]!, cpu1[i]!));
    const supervisor = sampleMemory(supPid, simDir);
    const devices = pids.map((p) => sampleMemory(p, simDir));
    if (!supervisor || devices.some((x) => !x)) throw new Error('scale: a process ended during the measurement');
    const kernelAfter = kernelMemory();
    const procs = [supervisor, ...(devices as MemorySample[])];
    const sum = (f: (m: MemorySample) => number) => procs.reduce((a, m) => a + f(m), 0);
    return {
      disks,
      exe,
      supervisor,
      devices: devices as MemorySample[],
      pssKiB: sum((m) => m.pssKiB),
      ussKiB: sum((m) => m.ussKiB),
      kernelKiB: sum((m) => m.pteKiB + m.threads * KERNEL_STACK_KIB),
      threads: sum((m) => m.threads),
      processes: procs.length,
      hostKernelDeltaKiB: {
        slab: kernelAfter.slabKiB - kernelBefore.slabKiB,
        kernelStack: kernelAfter.kernelStackKiB - kernelBefore.kernelStackKiB,
        pageTables: kernelAfter.pageTablesKiB - kernelBefore.pageTablesKiB,
      },
      idleCpuPct: (d.reduce((a, x) => a + x.cpuS, 0) / o.idleSeconds) * 100,
      wakeupsPerS: d.reduce((a, x) => a + x.wakeups, 0) / o.idleSeconds,
      supervisorWakeupsPerS: d[0]!.wakeups / o.idleSeconds,
      busy,
    };
  } finally {
    const pids = fs.existsSync(path.join(runDir, 'status')) ? [...new Set(devicePids(runDir))] : [];
    if (worker && worker.proc.exitCode === null) {
      const stopped = worker.stop('SIGTERM');
      await Promise.race([stopped, sleep(20_000)]);
      if (worker.proc.exitCode === null && worker.proc.signalCode === null) await worker.stop('SIGKILL');
    }
    // Device processes that outlived the supervisor: only the ones this run started, by pid.
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    for (const g of guests) g.close();
    for (const c of clients) c.close();
    await xsd?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export interface ScaleFit {
  /** MiB per disk (slope over N) and MiB at N = 0 (intercept). */
  pssMiB: { slope: number; intercept: number };
  ussMiB: { slope: number; intercept: number };
  kernelMiB: { slope: number; intercept: number };
  threads: { slope: number; intercept: number };
  idleCpuPct: { slope: number; intercept: number };
  wakeupsPerS: { slope: number; intercept: number };
}

export function fitScale(points: readonly ScalePoint[]): ScaleFit {
  const x = points.map((p) => p.disks);
  const f = (y: (p: ScalePoint) => number) => fit(x, points.map(y));
  return {
    pssMiB: f((p) => p.pssKiB / 1024),
    ussMiB: f((p) => p.ussKiB / 1024),
    kernelMiB: f((p) => p.kernelKiB / 1024),
    threads: f((p) => p.threads),
    idleCpuPct: f((p) => p.idleCpuPct),
    wakeupsPerS: f((p) => p.wakeupsPerS),
  };
}

const mib = (k: number) => k / 1024;
const f1 = (n: number) => (Number.isFinite(n) ? (Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2)) : '-');

export function scaleTable(points: readonly ScalePoint[], fitted: ScaleFit): string {
  const head = ['disks', 'procs', 'threads', 'PSS MiB', 'PSS/disk', 'USS/proc', 'anon/proc', 'sup PSS', 'kern MiB', 'host slab Δ', 'idle CPU %', 'wakeups/s', 'sup wk/s'];
  const body = points.map((p) => {
    const med = (f: (m: MemorySample) => number) => summarize(p.devices.map(f)).median;
    return [
      String(p.disks), String(p.processes), String(p.threads), f1(mib(p.pssKiB)), f1(mib(p.pssKiB) / p.disks),
      f1(mib(med((m) => m.ussKiB))), f1(mib(med((m) => m.anonKiB))), f1(mib(p.supervisor.pssKiB)), f1(mib(p.kernelKiB)),
      f1(mib(p.hostKernelDeltaKiB.slab)), f1(p.idleCpuPct), f1(p.wakeupsPerS), f1(p.supervisorWakeupsPerS),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  const s = (v: { slope: number; intercept: number }, unit: string) => `${f1(v.slope)} ${unit}/disk (+${f1(v.intercept)} at 0)`;
  return [
    line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line), '',
    `slope over N: PSS ${s(fitted.pssMiB, 'MiB')}, USS ${s(fitted.ussMiB, 'MiB')}, page tables + kernel stacks ${s(fitted.kernelMiB, 'MiB')}, ` +
      `threads ${s(fitted.threads, '')}, idle CPU ${s(fitted.idleCpuPct, '%')}, wakeups ${s(fitted.wakeupsPerS, '/s')}`,
    ...points.filter((p) => p.busy).map((p) => `N=${p.disks} with ${p.busy!.disks} busy: PSS ` +
      `${f1(mib(p.busy!.pssKiB))} MiB, page tables + stacks ${f1(mib(p.busy!.kernelKiB))} MiB, writing ` +
      `${f1(p.busy!.writeMiBs)} MiB/s (goal: 200 disks, 20 busy, within 1 GiB)`),
    `goal: <= 1.25 MiB of dom0 memory per idle disk (PSS + kernel slope now ${f1(fitted.pssMiB.slope + fitted.kernelMiB.slope)} MiB), ~0 idle CPU`,
    '(PSS leaves out the mappings of the simulated guests\' memory; "kern" is page tables + 16 KiB per thread; host slab Δ is host-wide and noisy)',
  ].join('\n') + '\n';
}

/** Runs every count in order; rows for `npm run bench` (one per measure and N, and the slopes). */
export async function benchScale(o: ScaleOptions): Promise<{ points: ScalePoint[]; fit: ScaleFit; rows: Row[] }> {
  const points: ScalePoint[] = [];
  for (const n of o.counts) {
    progress(`scale: N = ${n}`);
    const p = await measureScale(n, o);
    points.push(p);
    progress(`scale: N = ${n}: PSS ${f1(mib(p.pssKiB))} MiB (${f1(mib(p.pssKiB) / n)} per disk), idle CPU ${f1(p.idleCpuPct)} %, ${f1(p.wakeupsPerS)} wakeups/s`);
  }
  const fitted = fitScale(points);
  const one = (v: number) => summarize([v]);
  const rows: Row[] = [];
  for (const p of points) {
    rows.push({ section: 'scale', name: `N=${p.disks}: PSS per disk`, unit: 'MiB', better: 'lower', value: one(mib(p.pssKiB) / p.disks) });
    rows.push({ section: 'scale', name: `N=${p.disks}: idle wakeups`, unit: '/s', better: 'lower', value: one(p.wakeupsPerS) });
  }
  rows.push({ section: 'scale', name: 'PSS per disk (slope over N)', unit: 'MiB', better: 'lower', value: one(fitted.pssMiB.slope), target: '<= 1.25 MiB with kernel memory' });
  rows.push({ section: 'scale', name: 'page tables + kernel stacks per disk (slope)', unit: 'MiB', better: 'lower', value: one(fitted.kernelMiB.slope) });
  rows.push({ section: 'scale', name: 'idle CPU per disk (slope)', unit: '% of a CPU', better: 'lower', value: one(fitted.idleCpuPct.slope), target: '~0' });
  rows.push({ section: 'scale', name: 'idle wakeups per disk (slope)', unit: '/s', better: 'lower', value: one(fitted.wakeupsPerS.slope), target: '~0' });
  return { points, fit: fitted, rows };
}
