// Fuzzing the frontend's XenStore values as a hostile guest writes them, against the real
// Device state machine (test/helpers/sim-rig.ts: the simulated store and hypervisor in this
// process). Each round writes random values to the keys a blkfront writes (ring-ref,
// ring-refN, ring-page-order, event-channel, protocol, multi-queue-num-queues, queue-N/...,
// feature keys, unknown keys): numbers at every boundary, 4 KiB strings, whitespace, NUL and
// other bytes, good grants and ports; and flaps its state through valid and invalid values.
// Then it asks once more as blkfront does (Closed, Initialising, Initialised) and the backend
// must give a verdict: Connected, or Closing with afsfile-error. Checked: no exception escapes,
// no warning that is a crash in disguise (a TypeError...), a verdict every time (never a hang),
// and removal still works. A failure prints the seed that replays it.
//
// Run as part of `npm run fuzz` (test/proofs/fuzz.ts: --xenstore-seconds).
import { setTimeout as sleep } from 'node:timers/promises';
import type { XenStore } from '../../src/xen/xenstore';
import { type Rig, rig } from '../helpers/sim-rig';
import { until } from '../helpers/wait';
import { seeded } from './verified-workload';

export interface XenStoreFuzzFigures {
  rounds: number;
  writes: number;
  stateFlaps: number;
  connected: number;
  refused: number;
  /** Writes the store itself refused (a value too long for one message). */
  refusedWrites: number;
  failures: string[];
}

function figures(): XenStoreFuzzFigures {
  return { rounds: 0, writes: 0, stateFlaps: 0, connected: 0, refused: 0, refusedWrites: 0, failures: [] };
}

/** Warnings that are not a refusal of bad input but a bug showing through. */
const CRASHY = /TypeError|RangeError|ReferenceError|SyntaxError|is not a function|Cannot read prop/;

const KEYS = [
  'ring-ref', 'ring-ref0', 'ring-ref1', 'ring-ref3', 'ring-ref15', 'ring-ref16', 'ring-page-order', 'num-ring-pages',
  'event-channel', 'protocol', 'multi-queue-num-queues', 'queue-0/ring-ref', 'queue-0/event-channel',
  'queue-1/ring-ref', 'queue-1/event-channel', 'queue-3/ring-ref0', 'queue-0/ring-ref0', 'feature-persistent',
  'feature-discard', 'feature-flush-cache', 'feature-large-sector-size', 'max-ring-page-order', 'state',
  'backend', 'backend-id', 'x',
];

const STATES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '-1', '', ' 3', '3\n', '03', '3.0', 'abc', '4294967299'];

function bigString(r: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(r() < 0.9 ? 32 + Math.floor(r() * 95) : Math.floor(r() * 0x2ff));
  return s;
}

/** A value for any key: numbers at the edges, good grants/ports, protocols, junk. */
function value(r: () => number, good: { grefs: number[]; ports: number[] }): string {
  const k = Math.floor(r() * 14);
  switch (k) {
    case 0: return String(good.grefs[Math.floor(r() * good.grefs.length)]);
    case 1: return String(good.ports[Math.floor(r() * good.ports.length)]);
    case 2: return String(Math.floor(r() * 10));
    case 3: return ['4294967295', '4294967296', '9007199254740993', '1e309', '-0', '-1', 'NaN', 'Infinity'][
      Math.floor(r() * 8)]!;
    case 4: return ['0x10', '010', ' 5', '5 ', '5\n', '+5', '5.5', '5e2', '٣'][Math.floor(r() * 9)]!;
    case 5: return ['x86_64-abi', 'x86_32-abi', 'arm-abi', 'native', '', 'x86_64-abi\u0000', 'X86_64-ABI'][
      Math.floor(r() * 7)]!;
    case 6: return bigString(r, 4096);
    case 7: return bigString(r, Math.floor(r() * 64));
    case 8: return '';
    case 9: return '\u0000';
    case 10: return STATES[Math.floor(r() * STATES.length)]!;
    default: return String(Math.floor(r() * 2 ** 32));
  }
}

async function writeGood(gx: XenStore, fe: string, good: { grefs: number[]; ports: number[] }): Promise<void> {
  await gx.write(`${fe}/ring-ref`, String(good.grefs[0]));
  await gx.write(`${fe}/event-channel`, String(good.ports[0]));
  await gx.write(`${fe}/protocol`, 'x86_64-abi');
}

/** One round on a fresh device; throws what it found wrong. */
async function round(r: () => number, f: XenStoreFuzzFigures): Promise<void> {
  const dev: Rig = await rig({ connect: false, sizeMiB: 1 });
  let removed = false;
  try {
    const gx = dev.store.connect(5);
    const fe = dev.paths.frontend;
    const be = dev.paths.backend;
    const g = dev.guest;
    const good = {
      grefs: Array.from({ length: 4 }, () => g.grant(g.allocPages(1), false)),
      ports: Array.from({ length: 2 }, () => g.allocUnboundPort(0)),
    };
    if (r() < 0.5) await writeGood(gx, fe, good);
    const steps = 5 + Math.floor(r() * 40);
    for (let i = 0; i < steps; i++) {
      const k = r();
      if (k < 0.6) {
        // The store may refuse a value (too long for a message): that is the guest's problem.
        await gx.write(`${fe}/${KEYS[Math.floor(r() * KEYS.length)]}`, value(r, good)).then(() => f.writes++,
          () => f.refusedWrites++);
      } else if (k < 0.7) {
        await gx.rm(`${fe}/${KEYS[Math.floor(r() * KEYS.length)]}`).catch(() => undefined);
      } else {
        await gx.write(`${fe}/state`, STATES[Math.floor(r() * STATES.length)]!);
        f.stateFlaps++;
      }
      if (r() < 0.3) await sleep(Math.floor(r() * 3));
    }
    // Ask as blkfront does after an error; the backend must answer.
    const beState = async (): Promise<string | undefined> => dev.dom0.tryRead(`${be}/state`);
    await gx.write(`${fe}/state`, '6');
    await until('the backend at Closed or InitWait after the frontend closed', async () =>
      ['2', '6'].includes((await beState()) ?? ''), 5000);
    await gx.write(`${fe}/state`, '1');
    await until('the backend at InitWait after Initialising', async () => (await beState()) === '2', 5000);
    if (r() < 0.5) await writeGood(gx, fe, good);
    await gx.write(`${fe}/state`, '3');
    const verdict = await until('a verdict (Connected, or Closing with afsfile-error)', async () => {
      const s = await beState();
      if (s === '4') return 'connected';
      if (s === '5' && ((await dev.dom0.tryRead(`${be}/afsfile-error`)) ?? '') !== '') return 'refused';
      return undefined;
    }, 5000);
    if (verdict === 'connected') f.connected++;
    else f.refused++;
    const crashy = dev.warnings.filter((w) => CRASHY.test(w));
    if (crashy.length) throw new Error(`a warning that is a bug: ${crashy[0]}`);
    const res = await dev.toolstack.removeVbd(dev.paths, { timeoutMs: 5000 });
    removed = true;
    if (!res.closed) throw new Error('removal did not reach Closed');
  } finally {
    if (!removed) await dev.toolstack.removeVbd(dev.paths, { timeoutMs: 2000 }).catch(() => undefined);
    await dev.close();
  }
  f.rounds++;
}

/** `minRounds`: go on past `seconds` until that many rounds ran (a loaded machine still gets a
 * fair sample), but never past 10 times `seconds`. */
export async function runXenStoreFuzz(o: { seconds: number; seed: number; minRounds?: number }):
  Promise<XenStoreFuzzFigures> {
  const f = figures();
  const escaped: unknown[] = [];
  const onEscape = (e: unknown): void => void escaped.push(e);
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);
  const t0 = Date.now();
  const going = (): boolean => {
    const t = Date.now() - t0;
    return t < o.seconds * 1000 || (n < (o.minRounds ?? 0) && t < o.seconds * 10_000);
  };
  let n = 0;
  const lane = async (): Promise<void> => {
    while (going() && f.failures.length <= 5 && !escaped.length) {
      // Each round has its own seed derived from the run's: a failing round replays alone.
      const roundSeed = (o.seed * 1_000_003 + n++) >>> 0;
      try {
        await round(seeded(roundSeed), f);
      } catch (e) {
        f.failures.push(`xenstore round seed ${roundSeed} (run --seed ${o.seed}): ${(e as Error).message}`);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: 4 }, lane));
    if (escaped.length) {
      const e = escaped[0] as Error | undefined;
      f.failures.push(`exception escaped (run --seed ${o.seed}): ${String(e?.stack ?? e)}`);
    }
  } finally {
    process.off('uncaughtException', onEscape);
    process.off('unhandledRejection', onEscape);
  }
  return f;
}

/** Replays one round alone (its seed from a failure line). */
export async function replayXenStoreRound(roundSeed: number): Promise<XenStoreFuzzFigures> {
  const f = figures();
  try {
    await round(seeded(roundSeed), f);
  } catch (e) {
    f.failures.push(`xenstore round seed ${roundSeed}: ${(e as Error).message}`);
  }
  return f;
}

export function describeXenStoreFuzz(f: XenStoreFuzzFigures, seconds: number): string {
  return `xenstore fuzz: ${f.rounds} rounds in ${seconds.toFixed(1)} s, ${f.writes} frontend values written ` +
    `(${f.refusedWrites} refused by the store), ` +
    `${f.stateFlaps} state changes; verdicts: ${f.connected} connected, ${f.refused} refused with afsfile-error; ` +
    `failures ${f.failures.length}`;
}
