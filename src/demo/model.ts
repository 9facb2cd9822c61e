// What the demo expects the disk to hold: a version per 512-byte sector, and sector contents
// derived from (sector, version), so every byte read back can be checked without keeping a
// copy of the data. Version 0 = zeros (never written, or discarded); UNKNOWN = not checked
// (an existing --image before the demo wrote there).
import { SECTOR_SIZE } from '../blkif/constants';

export const UNKNOWN = 0xffffffff;

export class DiskModel {
  readonly versions: Uint32Array;
  private next = 1;

  constructor(readonly sectors: number, initiallyZero: boolean) {
    this.versions = new Uint32Array(sectors);
    if (!initiallyZero) this.versions.fill(UNKNOWN);
  }

  /** Data for a write of `count` sectors at `sector`; the model records it at once. */
  writeData(sector: number, count: number): Uint8Array {
    const v = this.next++;
    if (this.next === UNKNOWN) this.next = 1;
    const out = new Uint8Array(count * SECTOR_SIZE);
    for (let i = 0; i < count; i++) {
      this.versions[sector + i] = v;
      fillSector(out, i * SECTOR_SIZE, sector + i, v);
    }
    return out;
  }

  discard(sector: number, count: number): void {
    this.versions.fill(0, sector, sector + count);
  }

  /**
   * Compares data read at `sector` with the model; returns the number of mismatching sectors
   * and reports the first few through `report`.
   */
  check(sector: number, data: Uint8Array, report?: (sector: number, why: string) => void): number {
    const count = data.length / SECTOR_SIZE;
    const expect = new Uint8Array(data.length);
    let unknown = false;
    for (let i = 0; i < count; i++) {
      const v = this.versions[sector + i]!;
      if (v === UNKNOWN) unknown = true;
      else if (v !== 0) fillSector(expect, i * SECTOR_SIZE, sector + i, v);
    }
    // The common case in one native comparison; sector by sector only when something differs.
    if (!unknown && equal(data, expect)) return 0;
    let bad = 0;
    for (let i = 0; i < count; i++) {
      const v = this.versions[sector + i]!;
      if (v === UNKNOWN) continue;
      const at = i * SECTOR_SIZE;
      if (!equal(data.subarray(at, at + SECTOR_SIZE), expect.subarray(at, at + SECTOR_SIZE))) {
        bad++;
        report?.(sector + i, v === 0 ? 'expected zeros' : `expected version ${v}`);
      }
    }
    return bad;
  }
}

/**
 * 512 bytes for (sector, version): a slice of a fixed pseudo-random pool chosen by both, with
 * the sector number and version in its first 12 bytes. Copies and compares stay native
 * (memcpy, memcmp), and a misplaced sector, a stale version or bytes shifted within a sector
 * all differ from what is expected.
 */
function fillSector(out: Uint8Array, at: number, sector: number, version: number): void {
  const h = (Math.imul(sector ^ Math.floor(sector / 4294967296), 2654435761) ^ Math.imul(version, 40503)) >>> 0;
  const from = (h % POOL_SLOTS) * 16;
  // Buffer#copy: one native call, no view allocated per sector.
  POOL.copy(asBuffer(out), at, from, from + SECTOR_SIZE);
  const lo = sector >>> 0;
  const hi = Math.floor(sector / 4294967296);
  for (let b = 0; b < 4; b++) {
    out[at + b] = (lo >>> (8 * b)) & 0xff;
    out[at + 4 + b] = (hi >>> (8 * b)) & 0xff;
    out[at + 8 + b] = (version >>> (8 * b)) & 0xff;
  }
}

const POOL_SLOTS = 65536;
let lastOut: Uint8Array | undefined;
let lastBuf: Buffer | undefined;
function asBuffer(out: Uint8Array): Buffer {
  if (out !== lastOut || !lastBuf) {
    lastBuf = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    lastOut = out;
  }
  return lastBuf;
}

const POOL = ((): Buffer => {
  const pool = Buffer.alloc(POOL_SLOTS * 16 + SECTOR_SIZE);
  const words = new Uint32Array(pool.buffer, pool.byteOffset, pool.length / 4);
  let x = 0x2545f491;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return pool;
})();

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}
