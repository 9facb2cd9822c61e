// The I/O patterns measured by both fio and the afsfile engine, so each ratio compares like
// with like: same file, same block size, same queue depth, same I/O mode.

export interface Pattern {
  name: string;
  rw: 'randread' | 'randwrite' | 'read' | 'write';
  bs: number;
  /** Requests in flight: fio numjobs (psync) or iodepth (io_uring); the engine's guest queue depth. */
  depth: number;
  /** fsync after every write. */
  fsync: boolean;
  target?: { vs: 'psync' | 'io_uring'; ratio: number };
}

export const PATTERNS: readonly Pattern[] = [
  { name: '4k randread qd1', rw: 'randread', bs: 4096, depth: 1, fsync: false },
  { name: '4k randread qd32', rw: 'randread', bs: 4096, depth: 32, fsync: false, target: { vs: 'psync', ratio: 0.8 } },
  { name: '4k randwrite qd1', rw: 'randwrite', bs: 4096, depth: 1, fsync: false },
  { name: '4k randwrite qd32', rw: 'randwrite', bs: 4096, depth: 32, fsync: false, target: { vs: 'psync', ratio: 0.8 } },
  { name: '1M seqread', rw: 'read', bs: 1 << 20, depth: 4, fsync: false, target: { vs: 'psync', ratio: 0.9 } },
  { name: '1M seqwrite', rw: 'write', bs: 1 << 20, depth: 4, fsync: false, target: { vs: 'psync', ratio: 0.9 } },
  { name: '4k write+fsync qd1', rw: 'randwrite', bs: 4096, depth: 1, fsync: true },
];

export interface Location {
  name: string;
  dir: string;
  /** O_DIRECT is possible here (not on tmpfs). */
  direct: boolean;
}
