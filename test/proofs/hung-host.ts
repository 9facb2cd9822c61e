// What the hung-open and hung-close proofs share: a device host with a small thread pool, a
// neighbour's attach / detach / attach-again cycle timed beside the hang, and the host's end
// while its file calls still hang.
import * as fs from 'node:fs';
import * as assert from 'uvu/assert';
import { BLOCK } from './verified-workload';
import { until } from '../helpers/wait';
import { type SimDevice, devicePid } from './sim-devices';
import { type Bench, faultDevice } from './faults';

export const say = (l: string): void => void process.stdout.write(`${l}\n`);
/** The device host's thread pool, set so the test knows it (src/engine/threadpool-size.ts). */
export const POOL = 4;
/** Hung calls: more than the pool has threads. */
export const HUNG = POOL + 2;
/** Long enough that nothing in the test can be explained by the hang ending. */
export const HANG_MS = 150_000;
/** An attach, a removal or a request within this is prompt: the hang is many times longer. */
export const PROMPT_MS = 25_000;

/** The state letter of a process (/proc/PID/stat), undefined once it is reaped. */
function procState(pid: number): string | undefined {
  try {
    return /^\d+ \(.*\) (\S)/s.exec(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

/** Writes a block of `fill` and reads it back through the guest. */
export async function roundTrip(d: SimDevice, fill: number): Promise<void> {
  await d.front.write(0, new Uint8Array(BLOCK).fill(fill));
  assert.equal(await d.front.read(0, BLOCK), new Uint8Array(BLOCK).fill(fill), 'the block reads back');
}

export interface NeighbourTimes {
  attachMs: number;
  detachMs: number;
  reattachMs: number;
}

/**
 * A new neighbour (domains 90 and 91) in the host `host`: attached, used, removed, and its
 * image attached again (its lock, the close of the old descriptors, must be gone by then).
 * Every device made is pushed to `devs` for the caller's cleanup.
 */
export async function neighbourCycle(b: Bench, host: number, devs: SimDevice[]): Promise<NeighbourTimes> {
  let t0 = performance.now();
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
  t0 = performance.now();
  const again = await faultDevice(b, 91, 'neighbour.img', 1 << 20, PROMPT_MS);
  devs.push(again);
  const reattachMs = performance.now() - t0;
  await roundTrip(again, 6);
  return { attachMs, detachMs, reattachMs };
}

/** Fails unless every timing is prompt. */
export function assertPrompt(times: ReadonlyArray<readonly [string, number]>): void {
  for (const [what, ms] of times) assert.ok(ms < PROMPT_MS, `${what} took ${ms.toFixed(0)} ms`);
}

/**
 * SIGTERM to the host, which must end while its calls still hang: no thread of the process
 * waits for them. (The hung threads wait in the kernel for faultfs's answer: the process may
 * stay a zombie until then, but its main thread has exited.)
 */
export async function assertHostEnds(host: number, hanging: string): Promise<void> {
  const t0 = performance.now();
  process.kill(host, 'SIGTERM');
  const state = await until('the device host ends', () => {
    const s = procState(host);
    return s === undefined || s === 'Z' || s === 'X' ? s ?? 'reaped' : undefined;
  }, PROMPT_MS).catch(() => `still ${procState(host)}`);
  say(`the host ended (${state}) ${(performance.now() - t0).toFixed(0)} ms after SIGTERM, its ${hanging} still hung`);
  assert.ok(state === 'reaped' || state === 'Z' || state === 'X', `the host did not end: ${state}`);
}
