// Soak: simulated guests through a real `afsfile worker --platform sim` for minutes.
// Part 1: N devices at queue depth 32 running the verified workload; every 10 s the device
// processes' and the supervisor's RSS, and the longest time any device went without a
// completion (a stall); at the end p50/p99/p99.9 latency and an exact image check.
// Part 2: GiB written through one device over a smaller image (sequential 128 KiB writes
// wrapping around): the device process's RSS growth.
//
// Run: node build/test/proofs/soak.js [--minutes 10] [--devices 8] [--gib 16] [--image-gib 1]
// (npm run soak).
import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import minimist from 'minimist';
import { startWorkerRig } from '../helpers/worker-rig';
import { stopAll } from './crash-restart';
import { type SimDevice, attachSimDevice, devicePid, quantile } from './sim-devices';
import { BLOCK, VerifiedWorkload, seeded } from './verified-workload';

const say = (l: string): void => void process.stdout.write(`${l}\n`);

function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function soakDevices(minutes: number, devices: number, seed: number): Promise<boolean> {
  const rig = await startWorkerRig('afsfile-soak-');
  const devs: SimDevice[] = [];
  const loads: VerifiedWorkload[] = [];
  let ok = true;
  try {
    const random = seeded(seed);
    const bytes = 32 << 20;
    for (let i = 0; i < devices; i++) {
      const d = await attachSimDevice(rig, { domid: 60 + i, size: bytes, queueDepth: 32 });
      devs.push(d);
      const w = new VerifiedWorkload(d.front, { dev: i, blocks: bytes / BLOCK, concurrency: 32, maxBlocks: 8,
        flushEvery: 64, random });
      w.recordLatency = true;
      loads.push(w);
      w.start();
    }
    const end = Date.now() + minutes * 60_000;
    let worstStall = 0;
    const last = loads.map(() => performance.now());
    const rss: number[][] = [];
    const stallProbe = setInterval(() => {
      const t = performance.now();
      loads.forEach((w, i) => {
        if (w.lastCompletion > last[i]!) last[i] = w.lastCompletion;
        worstStall = Math.max(worstStall, t - last[i]!);
      });
    }, 50);
    let tick = 0;
    while (Date.now() < end) {
      await sleep(Math.min(10_000, Math.max(0, end - Date.now())));
      const sample = devs.map((d) => rssMiB(devicePid(rig, d)));
      rss.push(sample);
      const ops = loads.reduce((s, w) => s + w.writes + w.reads, 0);
      say(`  ${(++tick * 10).toString().padStart(4)} s: device RSS ${sample.map((x) => x.toFixed(0)).join('/')} MiB, ` +
        `supervisor ${rssMiB(rig.worker.proc.pid).toFixed(0)} MiB, ${ops} requests, worst stall so far ` +
          `${worstStall.toFixed(0)} ms`);
      if (loads.some((w) => w.errors.length)) break;
    }
    clearInterval(stallProbe);
    await Promise.all(loads.map((w) => w.stop().catch((e: Error) => w.errors.push(e.message))));
    const errors = loads.flatMap((w) => w.errors);
    let lost = 0;
    if (!errors.length) loads.forEach((w, i) => (lost += w.checkImage(fs.readFileSync(devs[i]!.image),
      true).bad.length));
    const lat = loads.flatMap((w) => w.latencies);
    const first = rss[Math.min(1, rss.length - 1)] ?? [];
    const lastRss = rss.at(-1) ?? [];
    const growth = Math.max(...lastRss.map((x, i) => x - (first[i] ?? x)));
    const requests = loads.reduce((s, w) => s + w.writes + w.reads + w.flushes, 0);
    say(`soak: ${devices} devices at queue depth 32 for ${minutes} min: ${requests} requests ` +
      `(${(requests / (minutes * 60)).toFixed(0)}/s), latency p50 ${quantile(lat, 0.5).toFixed(2)} ms, ` +
      `p99 ${quantile(lat, 0.99).toFixed(2)} ms, p99.9 ${quantile(lat, 0.999).toFixed(2)} ms; worst stall ` +
        `${worstStall.toFixed(0)} ms; ` +
      `device RSS growth after the first sample at most ${growth.toFixed(1)} MiB; guest errors ${errors.length}; ` +
        `blocks lost ${lost}`);
    ok = !errors.length && !lost && worstStall < 1000;
    if (errors.length) say(errors.slice(0, 5).join('\n'));
    return ok;
  } finally {
    await stopAll(rig, rig.worker, devs, loads);
  }
}

async function soakVolume(gib: number, imageGib: number): Promise<boolean> {
  const rig = await startWorkerRig('afsfile-soak-volume-');
  const devs: SimDevice[] = [];
  try {
    const d = await attachSimDevice(rig, { domid: 80, size: imageGib * 2 ** 30, queueDepth: 32, guestPages: 8192 });
    devs.push(d);
    const chunk = 128 << 10;
    const data = new Uint8Array(chunk).fill(0x5a);
    const total = gib * 2 ** 30;
    const imageBytes = imageGib * 2 ** 30;
    let written = 0;
    let next = 0;
    const pid = devicePid(rig, d);
    // The baseline is taken once 1 GiB went through (buffers and the copy pool warmed up).
    let start = NaN;
    let peak = 0;
    const t0 = Date.now();
    const lane = async (): Promise<void> => {
      while (next < total) {
        const at = next;
        next += chunk;
        await d.front.write((at % imageBytes) / 512, data);
        written += chunk;
        if (written % (1 << 30) === 0) {
          if (Number.isNaN(start)) start = rssMiB(pid);
          peak = Math.max(peak, rssMiB(pid));
          say(`  ${(written / 2 ** 30).toFixed(0)} GiB: device RSS ${rssMiB(pid).toFixed(0)} MiB`);
        }
      }
    };
    await Promise.all(Array.from({ length: 32 }, lane));
    await d.front.flush();
    const end = rssMiB(pid);
    peak = Math.max(peak, end);
    if (Number.isNaN(start)) start = end;
    say(`soak volume: ${gib} GiB through one device over a ${imageGib} GiB image in ` +
      `${((Date.now() - t0) / 1000).toFixed(0)} s: ` +
      `device RSS ${start.toFixed(0)} -> ${end.toFixed(0)} MiB (peak ${peak.toFixed(0)}), growth ` +
        `${(peak - start).toFixed(1)} MiB`);
    return peak - start < 64;
  } finally {
    await stopAll(rig, rig.worker, devs, []);
  }
}

if (require.main === module) {
  const a = minimist(process.argv.slice(2), { default: { minutes: 10, devices: 8, gib: 16, 'image-gib': 1,
    seed: Date.now() % 1e9 } });
  (async () => {
    const one = await soakDevices(Number(a.minutes), Number(a.devices), Number(a.seed));
    const two = Number(a.gib) > 0 ? await soakVolume(Number(a.gib), Number(a['image-gib'])) : true;
    if (!one || !two) say(`FAILED (seed ${a.seed})`);
    process.exit(one && two ? 0 : 1);
  })().catch((e: Error) => {
    say(`FAILED: ${e.stack}`);
    process.exit(1);
  });
}
