// Fuzzing the engine as a hostile frontend would (in process: test/engine/fixture.ts's granted
// pages and in-memory image, the real rings, validation and engine). Each round builds a ring
// of either ABI, one or two queues, and pushes requests that are mostly well-formed enough to
// get past validation: direct and INDIRECT reads and writes (descriptor pages really granted,
// with good and bad segments), boundary sectors (end of image, 2^53, 2^63, 2^64-1), FLUSH,
// BARRIER, DISCARD, unknown ops, random bytes; slots rewritten after the push; transient and
// hard file errors; and ring-index games (req_prod moved back or far ahead, req_event and
// rsp_prod scribbled), after which the ring must answer or be disconnected.
// Checked: no exception escapes; every request of a sane round gets exactly one response, in
// its own slot with its id; no byte of I/O outside the image; memory stays within a budget.
// A failure prints the seed that replays it.
//
// Run: node build/test/proofs/fuzz.js --seconds N --seed S (npm run fuzz -- ...); then the
// frontend's XenStore values for --xenstore-seconds (default a quarter of N, at least 2:
// test/proofs/fuzz-xenstore.ts); --xenstore-round S replays one such round.
import minimist from 'minimist';
import { setImmediate as immediate } from 'node:timers/promises';
import { type Abi, X86_32, X86_64 } from '../../src/blkif/abi';
import { BlkifOp } from '../../src/blkif/constants';
import { BackRing, FrontRing, ringBytes } from '../../src/blkif/ring';
import type { BlkifRequest, Segment } from '../../src/blkif/request';
import { Engine } from '../../src/engine/engine';
import { FakeGrants, MemFile } from '../engine/fixture';
import { describeXenStoreFuzz, replayXenStoreRound, runXenStoreFuzz } from './fuzz-xenstore';
import { seeded } from './verified-workload';

export interface FuzzFigures {
  requests: number;
  responses: number;
  rounds: number;
  brokenRings: number;
  indirect: number;
  boundary: number;
  rewritten: number;
  ringGames: number;
  okay: number;
  errors: number;
  unsupported: number;
  fileOps: number;
  peakRssMiB: number;
  failures: string[];
}

const TWO_64 = 1n << 64n;
/** Share of requests after which the image fails (transient ones are held, then retried). */
const FAIL_RATE = Number(process.env.AFSFILE_FUZZ_FAIL_RATE ?? 0.01);
const IMAGE_SECTORS = 2048;

function sector(r: () => number, f: FuzzFigures): bigint {
  const k = r();
  if (k < 0.6) return BigInt(Math.floor(r() * IMAGE_SECTORS));
  f.boundary++;
  const edges = [
    BigInt(IMAGE_SECTORS - 1), BigInt(IMAGE_SECTORS), BigInt(IMAGE_SECTORS - 8), BigInt(IMAGE_SECTORS + 1),
    (1n << 53n) - 1n, 1n << 53n, (1n << 53n) + 1n, 1n << 63n, TWO_64 - 1n, TWO_64 - 8n, 0n,
  ];
  return edges[Math.floor(r() * edges.length)]!;
}

function segments(r: () => number, n: number, good: number[]): Segment[] {
  return Array.from({ length: n }, () => {
    const bad = r() < 0.03;
    const first = bad ? Math.floor(r() * 256) : Math.floor(r() * 8);
    const last = bad ? Math.floor(r() * 256) : first + Math.floor(r() * (8 - first));
    return { gref: r() < 0.02 ? Math.floor(r() * 2 ** 32) : good[Math.floor(r() * good.length)]!, firstSect: first,
      lastSect: last };
  });
}

/** One request for slot idx: its id (undefined when the slot is random bytes). */
function makeRequest(r: () => number, f: FuzzFigures, grants: FakeGrants, good: number[], id: bigint): BlkifRequest {
  const k = r();
  const op = r() < 0.5 ? BlkifOp.READ : BlkifOp.WRITE;
  if (k < 0.4) {
    const n = r() < 0.05 ? Math.floor(r() * 256) : 1 + Math.floor(r() * 11);
    return {
      kind: 'rw', operation: op, innerOperation: op, nrSegments: n, handle: 0, id, sectorNumber: sector(r, f),
      segments: segments(r, Math.min(n, 11), good), indirectGrefs: [],
    };
  }
  if (k < 0.75) {
    f.indirect++;
    const n = r() < 0.05 ? Math.floor(r() * 65536) : 1 + Math.floor(r() * (r() < 0.8 ? 32 : 300));
    const pages = Math.max(1, Math.min(8, Math.ceil(n / 512) + (r() < 0.05 ? 1 : 0)));
    const indirectGrefs: number[] = [];
    for (let p = 0; p < pages; p++) {
      if (r() < 0.02) {
        indirectGrefs.push(Math.floor(r() * 2 ** 32));
        continue;
      }
      // A descriptor page: struct blkif_request_segment { grant_ref_t gref; uint8_t first_sect, last_sect; }.
      const page = new Uint8Array(4096);
      const v = new DataView(page.buffer);
      const used = Math.max(0, Math.min(512, n - p * 512 + (r() < 0.05 ? 4 : 0)));
      for (const [i, s] of segments(r, used, good).entries()) {
        v.setUint32(i * 8, s.gref >>> 0, true);
        page[i * 8 + 4] = s.firstSect & 0xff;
        page[i * 8 + 5] = s.lastSect & 0xff;
      }
      indirectGrefs.push(grants.grant(page, r() < 0.5));
    }
    const inner = r() < 0.03 ? Math.floor(r() * 256) : op;
    return {
      kind: 'rw', operation: BlkifOp.INDIRECT, innerOperation: inner, nrSegments: n, handle: 0, id,
      sectorNumber: sector(r, f), segments: [], indirectGrefs,
    };
  }
  if (k < 0.82) {
    const o = r() < 0.5 ? BlkifOp.FLUSH_DISKCACHE : BlkifOp.WRITE_BARRIER;
    const n = o === BlkifOp.WRITE_BARRIER ? Math.floor(r() * 3) : 0;
    return {
      kind: 'rw', operation: o, innerOperation: o, nrSegments: n, handle: 0, id, sectorNumber: sector(r, f),
      segments: segments(r, n, good), indirectGrefs: [],
    };
  }
  if (k < 0.9) {
    const nr = r() < 0.3 ? sector(r, f) : BigInt(Math.floor(r() * 64));
    return { kind: 'discard', operation: BlkifOp.DISCARD, flag: r() < 0.1 ? 1 : 0, handle: 0, id,
      sectorNumber: sector(r, f), nrSectors: nr };
  }
  return { kind: 'unknown', operation: 7 + Math.floor(r() * 249), id };
}

/** The id field of a slot as the backend would read it (id is at the same place for every op). */
function slotId(slot: Uint8Array, abi: Abi): bigint {
  return new DataView(slot.buffer, slot.byteOffset).getBigUint64(abi === X86_64 ? 8 : 4, true);
}

interface Queue {
  front: FrontRing;
  mem: ArrayBuffer;
  abi: Abi;
  broken: string | undefined;
  /** Per slot, the ids a response may carry (a slot rewritten after the push: either). */
  idOf: Map<number, bigint[]>;
}

/** One round: a fresh engine with 1-2 queues, `count` requests pushed in batches. */
async function round(r: () => number, f: FuzzFigures, count: number): Promise<void> {
  const abi = r() < 0.5 ? X86_64 : X86_32;
  const file = new MemFile(IMAGE_SECTORS * 512);
  const grants = new FakeGrants();
  const good = Array.from({ length: 16 }, () => grants.grant(new Uint8Array(4096), r() < 0.2));
  const limits = { sectors: BigInt(IMAGE_SECTORS), readOnly: r() < 0.1, maxIndirectSegments: r() < 0.5 ? 256 : 32,
    discard: r() < 0.8, flush: true, barrier: r() < 0.5 };
  const engine = new Engine(file, grants, limits, { fsyncIntervalMs: 0, holdTimeoutMs: 50 });
  const queues: Queue[] = [];
  const nq = r() < 0.3 ? 2 : 1;
  for (let q = 0; q < nq; q++) {
    const mem = new ArrayBuffer(ringBytes(Math.floor(r() * 3)));
    const front = new FrontRing(mem, abi);
    const entry: Queue = { front, mem, abi, broken: undefined, idOf: new Map() };
    engine.addQueue(new BackRing(mem, abi), q + 1, { notify: () => undefined, broken: (why) => (entry.broken = why) });
    queues.push(entry);
  }
  const game = r() < 0.15;
  let sent = 0;
  let answered = 0;
  let id = BigInt(Math.floor(r() * 2 ** 32)) << 16n;
  let progressAt = Date.now();
  try {
    for (let spins = 0; ; spins++) {
      for (const q of queues) {
        if (q.broken) continue;
        const batch = 1 + Math.floor(r() * 32);
        for (let b = 0; b < batch && sent < count && q.front.freeRequests() > 0; b++) {
          const idx = q.front.reqProdPvt;
          const off = q.front.slotOffset(idx);
          const slot = q.front.slotBytes(idx);
          const req = makeRequest(r, f, grants, good, id++);
          if (r() < 0.05) {
            for (let i = 0; i < slot.length; i++) slot[i] = Math.floor(r() * 256);
            q.idOf.set(idx, [slotId(slot, abi)]);
          } else {
            abi.writeRequest(new Uint8Array(q.mem), off, req);
            q.idOf.set(idx, [req.id % TWO_64]);
          }
          if (r() < FAIL_RATE) file.failNext(r() < 0.5 ? 'read' : 'write', ['EACCES', 'ETIMEDOUT', 'EIO', 'EDQUOT',
            'EROFS'][Math.floor(r() * 5)]!, 1 + Math.floor(r() * 3));
          if (r() < FAIL_RATE / 4) file.failNext('fsync', ['EACCES', 'EIO'][Math.floor(r() * 2)]!, 1);
          q.front.reqProdPvt = (idx + 1) >>> 0;
          sent++;
          f.requests++;
        }
        const before = q.front.reqProd;
        const pushed = q.front.pushRequests();
        // The guest rewrites slots it already pushed (the backend must have copied them once).
        const fresh = (q.front.reqProd - before) >>> 0;
        if (fresh > 0 && r() < 0.2) {
          f.rewritten++;
          const idx = (q.front.reqProdPvt - 1 - Math.floor(r() * Math.min(4, fresh))) >>> 0;
          const slot = q.front.slotBytes(idx);
          slot[Math.floor(r() * slot.length)] = Math.floor(r() * 256);
          q.idOf.get(idx)?.push(slotId(slot, abi));
        }
        if (game && r() < 0.05) {
          f.ringGames++;
          const v = new DataView(q.mem);
          const which = Math.floor(r() * 4);
          // struct blkif_sring header: req_prod@0, req_event@4, rsp_prod@8, rsp_event@12.
          if (which === 0) v.setUint32(0, (v.getUint32(0, true) - 1 - Math.floor(r() * 64)) >>> 0, true);
          else if (which === 1) v.setUint32(0, (v.getUint32(0, true) + 1000 + Math.floor(r() * 2 ** 31)) >>> 0, true);
          else if (which === 2) v.setUint32(4, Math.floor(r() * 2 ** 32), true);
          else v.setUint32(8, Math.floor(r() * 2 ** 32), true);
        }
        if (pushed || r() < 0.3) engine.kick();
      }
      await immediate();
      for (const q of queues) {
        if (q.broken) continue;
        if (q.front.unconsumedResponses() > q.front.size) {
          // Only after a game: more responses than slots, which blkfront treats as a broken ring.
          if (!game) throw new Error(`rsp_prod ${q.front.rspProd} is ${q.front.unconsumedResponses()} past rsp_cons`);
          q.broken = 'the frontend saw more responses than slots';
          continue;
        }
        while (q.front.unconsumedResponses() > 0) {
          const idx = q.front.rspCons;
          const rsp = q.front.takeResponse();
          f.responses++;
          answered++;
          progressAt = Date.now();
          if (!game) {
            const want = q.idOf.get(idx);
            if (want === undefined) throw new Error(`a response in slot ${idx} that had no request (or a second one)`);
            if (!want.includes(rsp.id)) throw new Error(`slot ${idx}: response id ${rsp.id}, request id ` +
              `${want.join(' or ')}`);
          }
          q.idOf.delete(idx);
          if (rsp.status === 0) f.okay++;
          else if (rsp.status === -1) f.errors++;
          else if (rsp.status === -2) f.unsupported++;
          else if (!game) throw new Error(`status ${rsp.status} in slot ${idx} (${abi.name}, ${queues.length} queues)`);
        }
        q.front.finalCheckForResponses();
      }
      if (file.outOfBounds) throw new Error(`${file.outOfBounds} I/O operations outside the image`);
      const open = queues.filter((q) => !q.broken);
      if (sent >= count && open.every((q) => q.idOf.size === 0)) break;
      if (game && spins > 2000) break; // a scribbled ring may never settle: it must only not crash
      if (Date.now() - progressAt > 3000) throw new Error(`${open.reduce((s, q) => s + q.idOf.size, 0)} requests ` +
        `never answered (sent ${sent}, answered ${answered})`);
      if (!open.length) break;
    }
  } finally {
    engine.close?.();
  }
  f.brokenRings += queues.filter((q) => q.broken).length;
  if (!game) for (const q of queues) if (q.broken) throw new Error(`a sane ring was disconnected: ${q.broken}`);
  f.fileOps += file.log.length;
  f.rounds++;
}

export interface FuzzOptions {
  readonly seconds: number;
  readonly seed: number;
  readonly say: (l: string) => void;
  readonly memoryBudgetMiB: number;
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzFigures> {
  const f: FuzzFigures = {
    requests: 0, responses: 0, rounds: 0, brokenRings: 0, indirect: 0, boundary: 0, rewritten: 0, ringGames: 0,
    okay: 0, errors: 0, unsupported: 0, fileOps: 0, peakRssMiB: 0, failures: [],
  };
  const escaped: unknown[] = [];
  const onEscape = (e: unknown): void => void escaped.push(e);
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);
  const end = Date.now() + o.seconds * 1000;
  let n = 0;
  // Rounds run side by side: one waiting for a held request's retry does not idle the run.
  const lane = async (): Promise<void> => {
    while (Date.now() < end && f.failures.length <= 5 && !escaped.length) {
      // Each round has its own seed derived from the run's: a failing round replays alone.
      const roundSeed = (o.seed * 1_000_003 + n++) >>> 0;
      try {
        await round(seeded(roundSeed), f, 200 + Math.floor(seeded(roundSeed ^ 0x5bd1e995)() * 2000));
      } catch (e) {
        f.failures.push(`round seed ${roundSeed} (run --seed ${o.seed}): ${(e as Error).message}`);
      }
    }
  };
  const lanes = Array.from({ length: 8 }, lane);
  try {
    while (Date.now() < end && f.failures.length <= 5) {
      await new Promise((r) => setTimeout(r, 200));
      if (escaped.length) {
        f.failures.push(`exception escaped (run --seed ${o.seed}): ` +
          `${String((escaped[0] as Error)?.stack ?? escaped[0])}`);
        break;
      }
      const rss = process.memoryUsage().rss / 2 ** 20;
      f.peakRssMiB = Math.max(f.peakRssMiB, rss);
      if (rss > o.memoryBudgetMiB) {
        f.failures.push(`RSS ${rss.toFixed(0)} MiB over the budget of ${o.memoryBudgetMiB} MiB (seed ${o.seed})`);
        break;
      }
    }
    await Promise.all(lanes);
  } finally {
    process.off('uncaughtException', onEscape);
    process.off('unhandledRejection', onEscape);
  }
  return f;
}

export function describeFuzz(f: FuzzFigures, seconds: number): string {
  return `fuzz: ${f.requests} requests in ${f.rounds} rounds (${Math.round(f.requests / seconds)}/s), ${f.responses} ` +
    `responses ` +
    `(${f.okay} OKAY, ${f.errors} ERROR, ${f.unsupported} EOPNOTSUPP); ${f.indirect} indirect, ${f.boundary} ` +
      `boundary sectors, ` +
    `${f.rewritten} slots rewritten after push, ${f.ringGames} ring-index games, ${f.brokenRings} rings ` +
      `disconnected; ` +
    `${f.fileOps} file operations; peak RSS ${f.peakRssMiB.toFixed(0)} MiB; failures ${f.failures.length}`;
}

async function main(): Promise<number> {
  const a = minimist(process.argv.slice(2), { default: { seconds: 60, seed: Date.now() % 1e9, 'memory-mib': 512 } });
  const o = { seconds: Number(a.seconds), seed: Number(a.seed),
    say: (l: string) => void process.stdout.write(`${l}\n`), memoryBudgetMiB: Number(a['memory-mib']) };
  // The frontend's XenStore values (test/proofs/fuzz-xenstore.ts): a quarter of the time again.
  const xsSeconds = Number(a['xenstore-seconds'] ?? Math.max(2, o.seconds / 4));
  if (a['xenstore-round'] !== undefined) {
    const f = await replayXenStoreRound(Number(a['xenstore-round']));
    process.stdout.write(`${f.failures.length ? `FAILED: ${f.failures.join('\n')}` : 'the round passes'}\n`);
    return f.failures.length ? 1 : 0;
  }
  o.say(`fuzz: seed ${o.seed} (replay: npm run fuzz -- --seed ${o.seed} --seconds ${o.seconds})`);
  let t0 = Date.now();
  const f = await runFuzz(o);
  o.say(describeFuzz(f, (Date.now() - t0) / 1000));
  t0 = Date.now();
  const x = xsSeconds > 0 ? await runXenStoreFuzz({ seconds: xsSeconds, seed: o.seed }) : undefined;
  if (x) o.say(describeXenStoreFuzz(x, (Date.now() - t0) / 1000));
  const failures = [...f.failures, ...(x?.failures ?? [])];
  if (failures.length) o.say(`FAILED (replay: --seed ${o.seed}):\n${failures.join('\n')}`);
  return failures.length ? 1 : 0;
}

if (require.main === module) {
  main().then((code) => process.exit(code), (e: Error) => {
    process.stdout.write(`FAILED: ${e.stack}\n`);
    process.exit(1);
  });
}
