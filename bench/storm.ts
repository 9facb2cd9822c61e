// The storm benchmark (issue 19 defect 4, XSA-332 class): a guest notifying its backend in a
// loop with no requests, beside a neighbour guest doing 4 KiB I/O at queue depth 1. Both served
// by a real `afsfile worker --platform sim` (one device process each); the guests are simulated
// in this process. Rounds alternate a quiet phase (the baseline: the storming guest idle) and
// a storm phase (and a sham storm), each `seconds` long, and report:
//   - the storming guest's device process CPU (share of one core, /proc/PID/stat), storm vs quiet;
//   - the neighbour's p99 request latency, storm vs a sham storm (the same loop to a port no
//     backend is bound to: this process's own cost of the loop), ratio per round; and the sham
//     against no loop at all.
// Targets from the issue: the storming device at most 10% of one core, the neighbour's p99
// moved by less than 20%.
// The simulated wire keeps a port masked at the guest's side until the backend unmasks it
// (src/sim/wire.ts Msg.UNMASK), so a masked port costs the device process nothing, as on Xen.
// The storm loop shares this process with the neighbour's guest (it yields every STORM_BATCH
// notifies, and keeps to STORM_RATE).
import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { startWorkerRig } from '../test/helpers/worker-rig';
import { attachSimDevice, devicePid, waitDevicePid } from '../test/proofs/sim-devices';
import { pattern } from '../test/helpers/pattern';
import { type Row, progress } from './report';
import { quantile, summarize } from './stats';

const STORM_BATCH = 64;
/** Notifies per second of the storming guest: Linux blkback without lateeoi would wake this often. */
const STORM_RATE = 200_000;
const CLK_TCK = 100;

/** utime + stime of a process, seconds (/proc/PID/stat fields 14 and 15, in clock ticks). */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

type Kind = 'quiet' | 'sham' | 'storm';

interface Phase {
  /** Storming device process CPU, % of one core. */
  cpuPct: number;
  p99Ms: number;
  p50Ms: number;
  ios: number;
  notifies: number;
}

export async function benchStorm(o: { rounds: number; seconds: number }): Promise<Row[]> {
  const rig = await startWorkerRig('afsfile-bench-storm-');
  try {
    const stormer = await attachSimDevice(rig, { domid: 61, size: 16 << 20 });
    const neighbour = await attachSimDevice(rig, { domid: 62, size: 16 << 20 });
    const stormPid = await waitDevicePid(rig, stormer);
    const port = Number(await rig.c.read(`${stormer.vbd.frontend}/event-channel`));
    await stormer.front.write(0, pattern(4096, 1)); // the ring works before the storm

    // The sham storm: the same loop at the same rate to a port no backend is bound to, so the
    // baseline carries this process's own cost of the loop, and the ratio is the backend's.
    const shamPort = stormer.guest.allocUnboundPort(0);
    const phase = async (kind: Kind): Promise<Phase> => {
      const storm = kind !== 'quiet';
      const target = kind === 'storm' ? port : shamPort;
      const pid = devicePid(rig, stormer) ?? stormPid;
      const end = performance.now() + o.seconds * 1000;
      const lat: number[] = [];
      let notifies = 0;
      const cpu0 = cpuSeconds(pid);
      const t0 = performance.now();
      const stormLoop = (async () => {
        while (storm && performance.now() < end) {
          for (let i = 0; i < STORM_BATCH; i++) stormer.guest.notify(target);
          notifies += STORM_BATCH;
          // At STORM_RATE: faster would only measure this process's own CPU (the neighbour's
          // guest shares it; on Xen a storming guest burns its own vCPU, not dom0's).
          const ahead = notifies / STORM_RATE - (performance.now() - t0) / 1000;
          if (ahead > 0.001) await sleep(ahead * 1000);
          else await new Promise((r) => setImmediate(r));
        }
      })();
      let i = 0;
      while (performance.now() < end) {
        const s = performance.now();
        const sector = (i * 8) % 32_000;
        if (i % 2 === 0) await neighbour.front.write(sector, pattern(4096, i));
        else await neighbour.front.read(sector, 4096);
        lat.push(performance.now() - s);
        i++;
      }
      await stormLoop;
      const wall = (performance.now() - t0) / 1000;
      const cpuPct = ((cpuSeconds(pid) - cpu0) / wall) * 100;
      lat.sort((a, b) => a - b);
      return { cpuPct, p99Ms: quantile(lat, 0.99), p50Ms: quantile(lat, 0.5), ios: lat.length, notifies };
    };

    await phase('quiet'); // warm-up
    const got: Record<Kind, Phase[]> = { quiet: [], sham: [], storm: [] };
    const kinds: Kind[] = ['quiet', 'sham', 'storm'];
    for (let r = 0; r < o.rounds; r++) {
      // Each round in another order: drift in the machine's load hits every kind alike.
      for (let k = 0; k < kinds.length; k++) {
        const kind = kinds[(k + r) % kinds.length]!;
        got[kind].push(await phase(kind));
        await sleep(200); // the back-off of the storming port winds down between phases
      }
      const [q, h, s] = [got.quiet.at(-1)!, got.sham.at(-1)!, got.storm.at(-1)!];
      progress(`storm round ${r + 1}/${o.rounds}: storming device ${s.cpuPct.toFixed(1)}% of a core ` +
        `(quiet ${q.cpuPct.toFixed(1)}%), ${(s.notifies / o.seconds / 1000).toFixed(0)}k notifies/s; neighbour ` +
        `p99 ${s.p99Ms.toFixed(2)} ms (sham storm ${h.p99Ms.toFixed(2)}, quiet ${q.p99Ms.toFixed(2)}), ` +
        `${s.ios}/${h.ios}/${q.ios} I/Os`);
    }
    const { quiet, sham, storm: stormy } = got;
    stormer.guest.close();
    neighbour.guest.close();
    const ratio = (f: (p: Phase) => number, base: Phase[]) => summarize(stormy.map((s, i) => f(s) / f(base[i]!)));
    return [
      { section: 'storm', name: 'storming guest: its device process CPU', unit: '% of a core',
        value: summarize(stormy.map((p) => p.cpuPct)),
        baseline: { name: 'same device, guest quiet', value: summarize(quiet.map((p) => p.cpuPct)) },
        better: 'lower', target: '<= 10%' },
      { section: 'storm', name: 'storming guest: notifies sent', unit: 'k/s',
        value: summarize(stormy.map((p) => p.notifies / o.seconds / 1000)), better: 'higher' },
      { section: 'storm', name: 'neighbour p99 latency (4k qd1)', unit: 'ms',
        value: summarize(stormy.map((p) => p.p99Ms)),
        baseline: { name: 'sham storm (no backend)', value: summarize(sham.map((p) => p.p99Ms)) },
        ratio: ratio((p) => p.p99Ms, sham), better: 'lower', target: '< 1.2x' },
      { section: 'storm', name: 'neighbour median latency (4k qd1)', unit: 'ms',
        value: summarize(stormy.map((p) => p.p50Ms)),
        baseline: { name: 'sham storm (no backend)', value: summarize(sham.map((p) => p.p50Ms)) },
        ratio: ratio((p) => p.p50Ms, sham), better: 'lower' },
      { section: 'storm', name: 'neighbour p99 latency (4k qd1), sham storm', unit: 'ms',
        value: summarize(sham.map((p) => p.p99Ms)),
        baseline: { name: 'no storm loop at all', value: summarize(quiet.map((p) => p.p99Ms)) },
        ratio: summarize(sham.map((h, i) => h.p99Ms / quiet[i]!.p99Ms)), better: 'lower' },
    ];
  } finally {
    await rig.close();
  }
}
