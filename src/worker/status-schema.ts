// The shape of the status files (<run-dir>/status/*.json) and of `afsfile status --json`, one
// versioned schema (README "Status files and status --json"). Extending it: add fields (readers
// ignore what they do not know); changing or removing one bumps STATUS_SCHEMA.

/** Written as `schema` into every status file and the `status --json` report. */
export const STATUS_SCHEMA = 1;

/** One device as `afsfile status` shows it: the device process's file merged with what the
 * supervisor knows (a device without a process still appears, from the supervisor). */
export interface DeviceView {
  readonly backend: string;
  readonly domid: number;
  readonly devid: number;
  /** xvda, ... (libxl's name for devid). */
  readonly vdev: string;
  /** The guest's name from XenStore, when it could be read. */
  readonly domain: string | null;
  readonly image: string | null;
  readonly mode: 'r' | 'w' | null;
  /** XenbusState name of the backend (Connected, InitWait, ...), or the supervisor's phase. */
  readonly state: string;
  /** Supervisor phase: running, restarting, failed, refused, closed. */
  readonly phase: string | null;
  /** The device process is alive. */
  readonly running: boolean;
  readonly failed: boolean;
  readonly inFlight: number;
  /** Requests by operation, as blkback's sysfs statistics (rd_req, wr_req, f_req, ds_req). */
  readonly requests: { read: number; write: number; flush: number; discard: number; indirect: number };
  /** 512-byte sectors (rd_sect, wr_sect). */
  readonly sectors: { read: number; write: number };
  readonly bytesRead: number;
  readonly bytesWritten: number;
  /** Requests answered with an error. */
  readonly errors: number;
  readonly restarts: number;
  readonly lastFsync: string | null;
  /** Request latency: counts per bucket; bucket i holds latencies <= boundsMs[i], the last one
   * everything slower. */
  readonly latency: {
    readonly boundsMs: readonly number[]; readonly counts: readonly number[];
    /** Sum of the latencies counted (ms); 0 from a device process that did not say. */
    readonly sumMs: number;
  } | null;
  /** Budget stalls (xen-blkback's oo_req): requests that waited in the ring for a free request
   * slot (max-requests), and requests that waited for buffer memory (max-inflight). */
  readonly stalls: { readonly slot: number; readonly memory: number };
  /** Requests held now (a transient image error being retried, within hold-timeout). */
  readonly held: number;
  /** Persistent grants (engine/persistent-grants.ts), when the device offers them. */
  readonly persistentGrants: {
    readonly mapped: number; readonly hits: number; readonly direct: number;
    readonly mapFailures: number; readonly overLimit: number;
  } | null;
  readonly message: string | null;
  /** The last error lines of the device. */
  readonly recentErrors: readonly string[];
  /** How its image I/O reaches the kernel: "io_uring", or "thread pool (why io_uring was
   * refused, e.g. io_uring_setup: EPERM)"; null when the device process did not say. */
  readonly ioPath: string | null;
  /** The identity the device is served with: 'host' (renew's), or an identity.LABEL's label. */
  readonly identity: string | null;
  /** The cell-wide image lock (flock), as its device process holds it: held (taken there),
   * adopted (from the previous process of the device), none (a file system without working
   * locks, lock-unsupported=warn), deferred (a migration destination, until its guest
   * connects); mode exclusive or shared; reach afs, nfs, local, host-only or unknown; since
   * when; keeper: the pid of the process holding it where one does (OpenAFS), else null; null
   * when the device process did not say. */
  readonly lock: {
    readonly state: string; readonly mode: string; readonly reach: string; readonly since: string | null;
    readonly note: string | null; readonly keeper: number | null;
  } | null;
}

export interface StatusReport {
  readonly schema: typeof STATUS_SCHEMA;
  readonly runDir: string;
  readonly worker: (Record<string, unknown> & { running: boolean }) | null;
  readonly devices: readonly DeviceView[];
  readonly renew: (Record<string, unknown> & { running: boolean }) | null;
  /** Per-domain identities (status/identity-LABEL.json, written by each one's opener): label,
   * principal, tokens per cell, renewals and failures, and the devices served with it. */
  readonly identities: ReadonlyArray<Record<string, unknown> & { label: string; running: boolean; devices: string[] }>;
  /** Status files that could not be used, each with why (never a reason to fail). */
  readonly skipped: readonly string[];
}
