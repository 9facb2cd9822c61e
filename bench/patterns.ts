// The I/O patterns measured by both fio and the afsfile engine, so each ratio compares like
// with like: same file, same block size, same queue depth, same I/O mode.

export interface Pattern {
  name: string;
  rw: 'randread' | 'randwrite' | 'read' | 'write';
  bs: number;
  /** Requests in flight: fio numjobs (psync) or iodepth (io_uring); the engine's guest queue depth. */
  depth: number;
  /**
   * A flush after every write: fio --fdatasync=1; the guest sends FLUSH_DISKCACHE after each
   * write completes (the engine's flush is fdatasync). Only writes are counted, as fio does.
   */
  fsync: boolean;
  /**
   * Targets apply on the disk file, against fio io_uring at the same iodepth in the same I/O
   * mode (fio psync is a reference row). For 1 MiB buffered the baseline is fio plus one memcpy
   * of the same bytes (the engine copies twice: page cache to pool, pool to guest).
   */
  target?: { direct?: number; buffered?: number };
}

export const PATTERNS: readonly Pattern[] = [
  // 4k qd1 buffered: fio takes a few microseconds per request, so no ratio target there; the
  // table's CPU us per request (engine and fio side by side) is the measure.
  { name: '4k randread qd1', rw: 'randread', bs: 4096, depth: 1, fsync: false, target: { direct: 0.8 } },
  { name: '4k randread qd32', rw: 'randread', bs: 4096, depth: 32, fsync: false,
    target: { direct: 0.8, buffered: 0.8 } },
  { name: '4k randwrite qd1', rw: 'randwrite', bs: 4096, depth: 1, fsync: false, target: { direct: 0.8 } },
  { name: '4k randwrite qd32', rw: 'randwrite', bs: 4096, depth: 32, fsync: false,
    target: { direct: 0.8, buffered: 0.8 } },
  { name: '1M seqread qd4', rw: 'read', bs: 1 << 20, depth: 4, fsync: false, target: { direct: 0.9, buffered: 0.9 } },
  { name: '1M seqwrite qd4', rw: 'write', bs: 1 << 20, depth: 4, fsync: false, target: { direct: 0.9, buffered: 0.9 } },
  { name: '4k write+fdatasync qd1', rw: 'randwrite', bs: 4096, depth: 1, fsync: true },
];

/** Where the file lives and how it is opened. */
export interface Variant {
  /** Row section, e.g. "io disk direct". */
  name: string;
  /** Directory of the test file. */
  dir: string;
  /** O_DIRECT (fio --direct=1; the engine's DeviceConfig.direct, `--direct`). */
  direct: boolean;
  /** Targets are checked here (the disk file); /dev/shm is a reference only. */
  targets: boolean;
}

export function variants(diskDir: string, shm: boolean): Variant[] {
  const v: Variant[] = [
    { name: 'io disk buffered', dir: diskDir, direct: false, targets: true },
    { name: 'io disk direct', dir: diskDir, direct: true, targets: true },
  ];
  if (shm) v.push({ name: 'io shm buffered', dir: '/dev/shm', direct: false, targets: false });
  return v;
}

/** The unit a pattern is reported in: IOPS for small blocks, MB/s for large ones. */
export function unitOf(p: Pattern): 'IOPS' | 'MB/s' {
  return p.bs >= 1 << 20 ? 'MB/s' : 'IOPS';
}

export function valueOf(p: Pattern, r: { iops: number; bw: number }): number {
  return unitOf(p) === 'IOPS' ? r.iops : r.bw / 1e6;
}
