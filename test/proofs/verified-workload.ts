// A guest workload whose every block can be checked against the image file: random writes of
// 4 KiB blocks (each block says which device, block and generation wrote it, and the rest of
// it follows from those), FLUSH now and then, and reads of blocks not being written. It keeps,
// per block, the last generation the backend acknowledged and the generation that was
// acknowledged when the last completed FLUSH was issued (what must survive anything).
import type { SimBlkfront } from '../../src/sim/blkfront';

export const BLOCK = 4096;
const SECTORS_PER_BLOCK = BLOCK / 512;
const MAGIC = 0x41464352; // "AFCR"

/** Fills one block for (device, block, generation); generation 0 is the zeroed image. */
export function fillBlock(out: Uint8Array, dev: number, block: number, gen: number): void {
  const v = new DataView(out.buffer, out.byteOffset, BLOCK);
  if (gen === 0) {
    out.fill(0, 0, BLOCK);
    return;
  }
  v.setUint32(0, MAGIC, true);
  v.setUint32(4, dev, true);
  v.setUint32(8, block, true);
  v.setUint32(12, gen, true);
  let x = (Math.imul(dev + 1, 0x9e3779b1) ^ Math.imul(block + 1, 0x85ebca6b) ^ Math.imul(gen, 0xc2b2ae35)) >>> 0 || 1;
  for (let i = 16; i < BLOCK; i += 4) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    v.setUint32(i, x, true);
  }
}

/** The generation a block holds, or -1 when it is not a block this device wrote whole. */
export function blockGen(buf: Uint8Array, dev: number, block: number, scratch: Uint8Array): number {
  const v = new DataView(buf.buffer, buf.byteOffset, BLOCK);
  let gen: number;
  if (v.getUint32(0, true) === 0 && v.getUint32(12, true) === 0) gen = 0;
  else if (v.getUint32(0, true) !== MAGIC || v.getUint32(4, true) !== dev || v.getUint32(8, true) !== block) return -1;
  else gen = v.getUint32(12, true);
  fillBlock(scratch, dev, block, gen);
  return Buffer.compare(Buffer.from(buf.buffer, buf.byteOffset, BLOCK), Buffer.from(scratch.buffer, scratch.byteOffset,
    BLOCK)) === 0 ? gen : -1;
}

export interface WorkloadOptions {
  readonly dev: number;
  readonly blocks: number;
  /** Requests this workload keeps in flight. */
  readonly concurrency: number;
  /** Longest write in blocks. */
  readonly maxBlocks: number;
  /** A FLUSH after about this many writes. */
  readonly flushEvery: number;
  /** Seeded random numbers. */
  readonly random: () => number;
}

export interface Mismatch {
  readonly block: number;
  readonly found: number;
  readonly durable: number;
  readonly acked: number;
}

export class VerifiedWorkload {
  /** Last generation acknowledged per block. */
  readonly acked: Uint32Array;
  /** Generation acknowledged before the last completed FLUSH was issued. */
  readonly durable: Uint32Array;
  private readonly next: Uint32Array;
  private readonly busy: Uint8Array;
  private running = false;
  private loops: Promise<void>[] = [];
  private writesSinceFlush = 0;
  /** A FLUSH of this workload is in flight. */
  flushing = false;
  readonly errors: string[] = [];
  writes = 0;
  reads = 0;
  flushes = 0;
  bytesWritten = 0;
  /** Request latencies in ms (when `recordLatency`), at most 2^21 kept. */
  readonly latencies: number[] = [];
  recordLatency = false;
  /** When the last request completed (performance.now()). */
  lastCompletion = 0;
  /** Completion times, for the time from an event to the next completion. */
  private waiters: Array<{ after: number; resolve: (t: number) => void }> = [];

  constructor(private readonly front: SimBlkfront, readonly o: WorkloadOptions) {
    this.acked = new Uint32Array(o.blocks);
    this.durable = new Uint32Array(o.blocks);
    this.next = new Uint32Array(o.blocks);
    this.busy = new Uint8Array(o.blocks);
  }

  start(): void {
    this.running = true;
    for (let i = 0; i < this.o.concurrency; i++) this.loops.push(this.loop());
  }

  /** Stops issuing, waits for what is in flight, then one last FLUSH. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
    await this.flush();
  }

  /** Resolves with the time of the first completion after `after` (performance.now()). */
  nextCompletion(after = performance.now()): Promise<number> {
    return new Promise((resolve) => this.waiters.push({ after, resolve }));
  }

  private completed(): void {
    const t = performance.now();
    this.lastCompletion = t;
    if (!this.waiters.length) return;
    const keep = [];
    for (const w of this.waiters) (t > w.after ? w.resolve(t) : keep.push(w));
    this.waiters = keep;
  }

  private latency(t0: number): void {
    if (this.recordLatency && this.latencies.length < 2 ** 21) this.latencies.push(performance.now() - t0);
  }

  private pick(n: number): number | undefined {
    for (let tries = 0; tries < 20; tries++) {
      const b = Math.floor(this.o.random() * (this.o.blocks - n + 1));
      let free = true;
      for (let i = b; i < b + n && free; i++) free = this.busy[i] === 0;
      if (free) return b;
    }
    return undefined;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        if (this.writesSinceFlush >= this.o.flushEvery && !this.flushing) await this.flush();
        else if (this.o.random() < 0.2) await this.readCheck();
        else await this.write();
      } catch (err) {
        this.errors.push(String((err as Error).message ?? err));
        return;
      }
    }
  }

  private async write(): Promise<void> {
    const n = 1 + Math.floor(this.o.random() * this.o.maxBlocks);
    const b = this.pick(n);
    if (b === undefined) return;
    const data = new Uint8Array(n * BLOCK);
    const gens: number[] = [];
    for (let i = 0; i < n; i++) {
      this.busy[b + i] = 1;
      const g = Math.max(this.next[b + i]!, this.acked[b + i]!) + 1;
      this.next[b + i] = g;
      gens.push(g);
      fillBlock(data.subarray(i * BLOCK, (i + 1) * BLOCK), this.o.dev, b + i, g);
    }
    try {
      const t0 = performance.now();
      await this.front.write(b * SECTORS_PER_BLOCK, data);
      this.latency(t0);
      for (let i = 0; i < n; i++) this.acked[b + i] = gens[i]!;
      this.writes++;
      this.writesSinceFlush++;
      this.bytesWritten += data.length;
      this.completed();
    } finally {
      for (let i = 0; i < n; i++) this.busy[b + i] = 0;
    }
  }

  private async readCheck(): Promise<void> {
    const n = 1 + Math.floor(this.o.random() * this.o.maxBlocks);
    const b = this.pick(n);
    if (b === undefined) return;
    for (let i = 0; i < n; i++) this.busy[b + i] = 1;
    try {
      const t0 = performance.now();
      const got = await this.front.read(b * SECTORS_PER_BLOCK, n * BLOCK);
      this.latency(t0);
      const scratch = new Uint8Array(BLOCK);
      for (let i = 0; i < n; i++) {
        const g = blockGen(got.subarray(i * BLOCK, (i + 1) * BLOCK), this.o.dev, b + i, scratch);
        if (g !== this.acked[b + i]) throw new Error(`dev ${this.o.dev}: read of block ${b + i} gave generation ` +
          `${g}, acknowledged ${this.acked[b + i]}`);
      }
      this.reads++;
      this.completed();
    } finally {
      for (let i = 0; i < n; i++) this.busy[b + i] = 0;
    }
  }

  async flush(): Promise<void> {
    this.flushing = true;
    this.writesSinceFlush = 0;
    const snapshot = this.acked.slice();
    try {
      await this.front.flush();
      // Only a later snapshot may replace an earlier one (FLUSHes complete in any order).
      for (let i = 0; i < snapshot.length; i++) if (snapshot[i]! > this.durable[i]!) this.durable[i] = snapshot[i]!;
      this.flushes++;
      this.completed();
    } finally {
      this.flushing = false;
    }
  }

  /**
   * Checks the image as a file: every block holds a whole generation this device wrote, at
   * least the durable one; with `exact`, exactly the acknowledged one (nothing in flight).
   * Returns the blocks that fail and how many hold acknowledged but not yet flushed data.
   * While I/O goes on, pass `durable` as copied before the image was read.
   */
  checkImage(image: Uint8Array, exact: boolean,
    durableBefore: Uint32Array = this.durable): { bad: Mismatch[]; ahead: number } {
    const bad: Mismatch[] = [];
    let ahead = 0;
    const scratch = new Uint8Array(BLOCK);
    for (let b = 0; b < this.o.blocks; b++) {
      const found = blockGen(image.subarray(b * BLOCK, (b + 1) * BLOCK), this.o.dev, b, scratch);
      const durable = durableBefore[b]!;
      const acked = this.acked[b]!;
      const ok = exact ? found === acked : found >= durable && found <= this.next[b]!;
      if (!ok) bad.push({ block: b, found, durable, acked });
      else if (found > durable) ahead++;
    }
    return { bad, ahead };
  }
}

/** A seeded generator (mulberry32), so a failing run can be replayed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
