// Per-device counters a person can read in `afsfile status` (mirage blkback and Linux blkback
// keep similar ones): requests by operation, bytes, errors, in-flight, fsyncs, latency buckets.

import type { PersistentStats } from './persistent-grants';

/** Upper bounds (ms) of the latency buckets; the last bucket is everything slower. */
export const LATENCY_BUCKETS_MS = [0.1, 0.5, 1, 5, 10, 50, 100, 500, 1000, 5000] as const;

export interface EngineStats {
  requests: { read: number; write: number; flush: number; barrier: number; discard: number; indirect: number; unknown: number };
  bytesRead: number;
  bytesWritten: number;
  bytesDiscarded: number;
  /** Requests answered with BLKIF_RSP_ERROR or EOPNOTSUPP. */
  errors: number;
  /** Transient file errors that were retried. */
  retries: number;
  inFlight: number;
  inFlightBytes: number;
  /** Highest in-flight seen (requests, bytes). */
  peakInFlight: number;
  peakInFlightBytes: number;
  fsyncs: number;
  fsyncErrors: number;
  /** Date.now() of the last successful fsync, 0 if none. */
  lastFsync: number;
  dirty: boolean;
  /** Bytes of write data kept until an fsync covers them (replayed after a failed fsync). */
  keptBytes: number;
  /** Failed fsyncs recovered by writing the kept data again; bytes so written. */
  recoveries: number;
  replayedBytes: number;
  /** Counts per LATENCY_BUCKETS_MS bucket, plus one for slower. */
  latency: number[];
  /** Sum of all latencies recorded (ms): with the buckets, a Prometheus histogram. */
  latencySumMs: number;
  /** Budget stalls, as xen-blkback's oo_req (drivers/block/xen-blkback/blkback.c counts a
   * request it found with no free pending_req): requests the guest had queued that stayed in
   * the ring because every request slot (max-requests) was in use (`slot`), and requests taken
   * that waited for buffer memory (max-inflight) (`memory`). Each request counts once. */
  stalls: { slot: number; memory: number };
  /** Requests held now: waiting for a transient image error to clear or for Durability (a
   * recovery, or room for kept data), within hold-timeout. Set by Engine.stats(). */
  held: number;
  /** Persistent grants (persistent-grants.ts), when the device offers them. */
  persistentGrants?: PersistentStats;
}

export function emptyStats(): EngineStats {
  return {
    requests: { read: 0, write: 0, flush: 0, barrier: 0, discard: 0, indirect: 0, unknown: 0 },
    bytesRead: 0,
    bytesWritten: 0,
    bytesDiscarded: 0,
    errors: 0,
    retries: 0,
    inFlight: 0,
    inFlightBytes: 0,
    peakInFlight: 0,
    peakInFlightBytes: 0,
    fsyncs: 0,
    fsyncErrors: 0,
    lastFsync: 0,
    dirty: false,
    keptBytes: 0,
    recoveries: 0,
    replayedBytes: 0,
    latency: new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0),
    latencySumMs: 0,
    stalls: { slot: 0, memory: 0 },
    held: 0,
  };
}

export function recordLatency(stats: EngineStats, ms: number): void {
  let i = 0;
  while (i < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[i]) i++;
  stats.latency[i]++;
  stats.latencySumMs += ms;
}
