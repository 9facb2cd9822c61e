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
    const expect = new Uint8Array(SECTOR_SIZE);
    let bad = 0;
    for (let i = 0; i * SECTOR_SIZE < data.length; i++) {
      const v = this.versions[sector + i]!;
      if (v === UNKNOWN) continue;
      if (v === 0) expect.fill(0);
      else fillSector(expect, 0, sector + i, v);
      const got = data.subarray(i * SECTOR_SIZE, (i + 1) * SECTOR_SIZE);
      if (!equal(got, expect)) {
        bad++;
        report?.(sector + i, v === 0 ? 'expected zeros' : `expected version ${v}`);
      }
    }
    return bad;
  }
}

/** Deterministic 512 bytes for (sector, version): xorshift32 seeded from both. */
function fillSector(out: Uint8Array, at: number, sector: number, version: number): void {
  const words = new Uint32Array(out.buffer, out.byteOffset + at, SECTOR_SIZE / 4);
  let x = (Math.imul(sector ^ 0x9e3779b9, 2654435761) ^ Math.imul(version, 40503) ^ Math.floor(sector / 4294967296)) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}
