// The one option table. It feeds minimist, each subcommand's --help, and the config file
// (/etc/xen/afsfile.conf: `key = value` lines whose keys are the long option names).
// Precedence: command-line flag > environment variable (where one is named) > config file > default.

export type Role = 'worker' | 'renew' | 'hotplug' | 'demo' | 'create' | 'check' | 'status' | 'detach' | 'bench' | 'version';

export type OptionType = 'string' | 'number' | 'boolean' | 'size' | 'list' | 'duration';

export interface OptionSpec {
  readonly name: string;
  readonly type: OptionType;
  readonly default?: string | number | boolean | readonly string[];
  readonly help: string;
  readonly roles: readonly Role[];
  /** May be set in the config file (per-invocation options may not). */
  readonly config: boolean;
  readonly env?: string;
  readonly choices?: readonly string[];
  readonly alias?: string;
  readonly placeholder?: string;
  /** Bounds of number, size and duration options (durations in seconds), checked wherever a value
   * is read (flag, environment, config file: src/cli/values.ts). */
  readonly min?: number;
  readonly max?: number;
  /** A count: whole numbers only. */
  readonly integer?: boolean;
  /** Paths (list options): each must be absolute. */
  readonly absolute?: boolean;
  /** Internal (set by afsfile for itself): not in --help, the man page or completion. */
  readonly hidden?: boolean;
}

/** Node turns any timer over 2^31-1 ms into 1 ms (lib/internal/timers.js, TIMEOUT_MAX): no
 * duration option may reach it. */
export const MAX_DURATION_S = Math.floor((2 ** 31 - 1) / 1000);
const DAY = 86_400;

const ALL: readonly Role[] = ['worker', 'renew', 'hotplug', 'demo', 'create', 'check', 'status', 'detach', 'bench'];
const DATA_PATH: readonly Role[] = ['worker', 'demo', 'bench'];

export const OPTIONS: readonly OptionSpec[] = [
  { name: 'config', type: 'string', default: '/etc/xen/afsfile.conf', env: 'AFSFILE_CONFIG', roles: ALL, config: false, placeholder: 'FILE',
    help: 'configuration file (key = value, # comments); flags override it' },
  { name: 'run-dir', type: 'string', default: '/run/afsfile', env: 'AFSFILE_RUN_DIR', roles: ALL, config: true, placeholder: 'DIR',
    help: 'directory for status files and per-device state' },
  { name: 'verbose', type: 'boolean', default: false, roles: ['version'], config: false,
    help: 'also load the native addon and report the runtime' },
  { name: 'selftest', type: 'boolean', default: false, roles: ['check'], config: false,
    help: 'also exercise /dev/xen/evtchn and gntdev in a dom0 loopback (binds to itself, grants itself pages)' },
  { name: 'json', type: 'boolean', default: false, roles: ['demo', 'create', 'check', 'status', 'bench'], config: false,
    help: 'print the result as JSON on stdout' },

  // Data path.
  { name: 'platform', type: 'string', default: 'auto', choices: ['auto', 'linux', 'sim'], roles: ['worker'], config: true,
    help: 'event channels and grant tables: linux (/dev/xen), sim (simulated guests), auto (linux when /dev/xen exists)' },
  { name: 'device', type: 'string', roles: ['worker'], config: false, placeholder: 'BACKEND-PATH', hidden: true,
    help: 'serve one device (the per-device child the supervisor starts)' },
  { name: 'opener', type: 'string', roles: ['worker'], config: false, placeholder: 'LABEL', hidden: true,
    help: '(internal) the process of one per-domain identity, in its own PAG' },
  { name: 'opener-pag', type: 'string', choices: ['keyctl', 'pagsh'], roles: ['worker'], config: false, hidden: true,
    help: '(internal) how the opener\'s PAG was made' },
  { name: 'identity-default', type: 'string', default: 'host', choices: ['host', 'required'], roles: ['worker'],
    config: true, placeholder: 'host|required',
    help: 'domains that no identity.LABEL line binds: served with the host identity (renew\'s), or refused ' +
      '(required)' },
  { name: 'isolation', type: 'string', default: 'identity', choices: ['identity', 'domain', 'disk'], roles: ['worker'],
    config: true, placeholder: 'identity|domain|disk',
    help: 'which disks share a device process: every disk of one identity (one process per identity, the least ' +
      'memory), of one guest domain, or none (a process per disk); a crash of a process restarts all its disks' },
  { name: 'spare', type: 'boolean', default: false, roles: ['worker'], config: false, hidden: true,
    help: '(internal) a device process started ahead of need, waiting to be told its device' },
  { name: 'fsync-interval', type: 'duration', default: '5s', min: 0.1, max: DAY, roles: DATA_PATH, config: true, placeholder: 'DURATION',
    help: 'fsync a dirty image at least this often' },
  // Below the AFS lock lease (300 s, extended at half of it: Linux fs/afs/flock.c): a held write
  // must fail before a lease that was last extended 150 s before the trouble can lapse.
  { name: 'hold-timeout', type: 'duration', default: '2m', min: 0, max: 7 * DAY, roles: ['worker'], config: true,
    placeholder: 'DURATION',
    help: 'how long transient image errors (EACCES, ETIMEDOUT, ENOSPC, EDQUOT) are retried before the guest sees them ' +
      '(on AFS keep it below 150 s: the image lock is a 300 s lease, extended every 150 s)' },
  { name: 'lock-unsupported', type: 'string', default: 'warn', choices: ['warn', 'refuse'], roles: ['worker'], config: true,
    placeholder: 'warn|refuse',
    help: 'an image on a file system whose locks do not reach other hosts (NFS nolock, FUSE): attached with a ' +
      'warning, or refused' },
  { name: 'migration-lock-wait', type: 'duration', default: '30s', min: 1, max: DAY, roles: ['worker'], config: true,
    placeholder: 'DURATION',
    help: 'how long a migration destination waits, when its guest connects, for the source to release the image lock' },
  { name: 'image-roots', type: 'list', roles: ['worker'], config: true, placeholder: 'DIR', absolute: true,
    help: 'directories every image must lie beneath (repeat, or comma-separated): images are opened by openat2 ' +
      'beneath one, so no symlink or ".." in an image path leads outside it (default: anywhere)' },
  { name: 'direct', type: 'boolean', default: false, roles: DATA_PATH, config: true,
    help: 'open local images with O_DIRECT (never for AFS: its cache manager needs buffered I/O)' },
  { name: 'max-requests', type: 'number', default: 32, min: 1, max: 4096, integer: true, roles: DATA_PATH, config: true, placeholder: 'N',
    help: 'per-device budget of requests in flight' },
  { name: 'max-inflight', type: 'size', default: '16M', min: 64 * 1024, max: 4 * 1024 ** 3, roles: DATA_PATH, config: true, placeholder: 'BYTES',
    help: 'per-device budget of bytes in flight' },
  { name: 'max-inflight-process', type: 'size', default: '256M', min: 1024 ** 2, max: 64 * 1024 ** 3, roles: ['worker'],
    config: true, placeholder: 'BYTES',
    help: 'budget of bytes in flight of all the disks one device process serves together (isolation)' },
  { name: 'max-kept-process', type: 'size', default: '128M', min: 1024 ** 2, max: 64 * 1024 ** 3, roles: ['worker'],
    config: true, placeholder: 'BYTES',
    help: 'budget of the write data all the disks of one device process keep together until an fsync covers ' +
      'it (to write it again after a failed fsync; each disk keeps 32M at most): a disk over it fsyncs first' },
  // Bounds: blkif.h (BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST 8 pages × 512 descriptors), io/ring.h
  // (XENBUS_MAX_RING_GRANT_ORDER 4); what src/worker/device/claim.ts accepts.
  { name: 'max-indirect-segments', type: 'number', default: 256, min: 0, max: 4096, integer: true, roles: DATA_PATH, config: true, placeholder: 'N',
    help: 'feature-max-indirect-segments advertised to frontends' },
  { name: 'max-ring-page-order', type: 'number', default: 4, min: 0, max: 4, integer: true, roles: DATA_PATH, config: true, placeholder: 'N',
    help: 'max-ring-page-order advertised to frontends' },
  { name: 'max-queues', type: 'number', default: 4, min: 1, max: 256, integer: true, roles: DATA_PATH, config: true, placeholder: 'N',
    help: 'multi-queue-max-queues advertised to frontends' },

  { name: 'metrics-file', type: 'string', roles: ['worker', 'check'], config: true, placeholder: 'FILE',
    help: 'also write the status as Prometheus metrics to FILE for node_exporter\'s textfile collector ' +
      '(e.g. /var/lib/prometheus/node-exporter/afsfile.prom), replaced atomically when a figure changes' },

  // create / demo.
  { name: 'size', type: 'size', roles: ['create', 'demo'], config: false, placeholder: 'BYTES',
    help: 'image size, a multiple of 512: K, M, G, T are powers of 1024 ' +
      '(10G = 10 GiB, as truncate -s reads it; 10GB = 10^10 bytes)' },
  { name: 'preallocate', type: 'boolean', default: false, roles: ['create'], config: false,
    help: 'allocate every block now instead of making a sparse file' },
  { name: 'image', type: 'string', roles: ['demo'], config: false, placeholder: 'PATH',
    help: 'use this image instead of a temporary one; it is overwritten, so an existing image ' +
      '(or one a device has attached) is refused without --force' },
  { name: 'force', type: 'boolean', default: false, roles: ['demo'], config: false,
    help: 'let demo --image overwrite an existing image' },
  { name: 'seconds', type: 'duration', min: 0.1, max: DAY, roles: ['demo'], config: false, placeholder: 'DURATION',
    help: 'run the workload for this long' },
  { name: 'queue-depth', type: 'number', default: 16, min: 1, max: 4096, integer: true, roles: ['demo'], config: false, placeholder: 'N',
    help: 'requests the simulated guest keeps in flight' },

  // Hotplug.
  { name: 'hotplug-log', type: 'string', default: '/var/log/xen/xen-hotplug.log', env: 'AFSFILE_HOTPLUG_LOG', roles: ['hotplug'], config: true, placeholder: 'FILE',
    help: 'where the hotplug script logs each decision' },
  { name: 'hotplug-syslog', type: 'string', default: 'logger', env: 'AFSFILE_HOTPLUG_SYSLOG', roles: ['hotplug'],
    config: true, placeholder: 'COMMAND',
    help: 'sends each hotplug decision to syslog as Xen\'s block scripts do (logger -t block-afsfile ' +
      '-p daemon.PRIORITY -- LINE); none: only the hotplug log' },
  { name: 'hotplug-wait', type: 'duration', default: '25s', min: 1, max: 600, roles: ['hotplug'], config: true, placeholder: 'DURATION',
    help: 'how long `add` waits for the worker to open the image (libxl allows the script 40 s)' },

  // renew.
  { name: 'keytab', type: 'string', roles: ['renew', 'check'], config: true, placeholder: 'FILE',
    help: 'keytab to get Kerberos tickets from; without it renew runs its command directly' },
  { name: 'principal', type: 'string', roles: ['renew'], config: true, placeholder: 'NAME',
    help: 'principal to authenticate as (default: the first in the keytab)' },
  { name: 'cell', type: 'list', roles: ['renew'], config: true, placeholder: 'CELL',
    help: 'AFS cell to get tokens for (repeat, or comma-separated; default: aklog\'s own)' },
  { name: 'lifetime', type: 'duration', default: '10h', min: 1, max: 7 * DAY, roles: ['renew'], config: true, placeholder: 'DURATION',
    help: 'requested ticket lifetime' },
  { name: 'margin', type: 'duration', default: '5m', min: 1, max: DAY, roles: ['renew'], config: true, placeholder: 'DURATION',
    help: 'renew no later than this long before expiry' },
  { name: 'aklog', type: 'string', default: 'auto', roles: ['renew'], config: true, placeholder: 'COMMAND',
    help: 'command that turns tickets into AFS tokens (split on blanks, no shell; per cell "-c CELL" for OpenAFS, "CELL" for kafs); auto: aklog (OpenAFS) or aklog-kafs (kafs)' },
  { name: 'afs-client', type: 'string', default: 'auto', choices: ['auto', 'openafs', 'kafs'], roles: ['renew'], config: true, placeholder: 'CLIENT',
    help: 'which AFS client the tokens are for: how aklog takes the cell and how a token is checked afterwards (tokens, or the rxrpc key in the session keyring); auto: the loaded kernel module, else the aklog\'s name' },
  { name: 'ccache', type: 'string', roles: ['renew'], config: true, placeholder: 'FILE',
    help: 'credential cache (default: <run-dir>/renew/krb5cc, mode 0600)' },
  { name: 'retry-cap', type: 'duration', default: '5m', min: 1, max: DAY, roles: ['renew'], config: true, placeholder: 'DURATION',
    help: 'longest wait between failed attempts; permanent errors (keytab, unknown principal) are retried at this interval' },
  { name: 'pag-wrapper', type: 'string', default: 'auto', choices: ['auto', 'pagsh', 'keyctl'], roles: ['renew'], config: true, placeholder: 'WRAPPER',
    help: 'how to make the PAG: pagsh (OpenAFS), keyctl (kAFS session keyring), auto (pagsh when the OpenAFS module is loaded, else keyctl, else pagsh)' },
  { name: 'no-pag', type: 'boolean', default: false, roles: ['renew'], config: true,
    help: 'run without a private PAG (tokens shared with every PAG-less root process)' },
  { name: 'in-pag', type: 'boolean', default: false, roles: ['renew'], config: false, hidden: true,
    help: '(internal) already re-executed inside a new PAG' },

  // Simulator (sim/).
  { name: 'sim-dir', type: 'string', env: 'AFSFILE_SIM_DIR', roles: ['worker'], config: false, placeholder: 'DIR', hidden: true,
    help: 'with --platform sim: directory where simulated guests listen (dom<domid>.sock) and keep their memory (dom<domid>.mem)' },
];

export function optionsFor(role: Role): OptionSpec[] {
  return OPTIONS.filter((o) => o.roles.includes(role));
}

export function findOption(name: string): OptionSpec | undefined {
  return OPTIONS.find((o) => o.name === name);
}
