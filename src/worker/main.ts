// `afsfile worker`: the supervisor, or with --device one device's process (DESIGN contracts,
// Process model, Signals).
import { FatalError } from '../cli/errors';
import { optionsFor } from '../cli/options';
import { type ParsedArgs, parseArgs } from '../cli/parse';
import type { PlatformLoader } from '../xen/platform';
import { isXenStoreError } from '../xen/xenstore';
import { connectXenStore } from '../xen/xenstore-client';
import { parseBackendPath } from './backend-path';
import { DeviceChild, type DeviceLink } from './device-child';
import { type ToDevice, parseToDevice } from './device-link';
import { hostMain } from './device-host';
import { PoolBudget } from '../engine/pool-budget';
import { stderrLine } from './log';
import { MetricsWriter } from './metrics';
import { notifyReady } from './sd-notify';
import { pidAlive, readStatusFiles, runDirProblem } from './status-file';
import { parseRetune } from './device-retune';
import { type Isolation, Supervisor, type SupervisorSettings } from './supervisor';
import type { IdentitySettings } from './identities';
import { identitiesFrom } from '../cli/identity-config';
import { readConfigFile } from '../cli/config-file';

/** `platform`: chosen by the caller (cli), the composition root; loaded in device processes.
 * `choose` chooses again for a spare device process, from the options it is assigned. */
export async function workerMain(
  args: ParsedArgs, env: NodeJS.ProcessEnv, platform: PlatformLoader, choose?: (a: ParsedArgs) => PlatformLoader,
): Promise<number> {
  // Handlers first (contract: every role installs them at the top of its entry point).
  let onStop: (() => void) | undefined;
  let stopRequested = false;
  const stop = (): void => { stopRequested = true; onStop?.(); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // SIGHUP: the supervisor reads the config file again (device processes hear from it over IPC;
  // one started by hand has nothing to reload). Nothing to reopen: logs go to stderr.
  let onReload: (() => void) | undefined;
  process.on('SIGHUP', () => (onReload ? onReload() : stderrLine('SIGHUP: nothing to reload yet')));

  const runDir = args.string('run-dir');
  const device = args.optionalString('device');

  const hooks = {
    stop: (fn: () => void): void => { onStop = fn; if (stopRequested) fn(); },
    reload: (fn: () => void): void => { onReload = fn; },
  };
  if (args.bool('spare')) {
    // Started ahead of need by the supervisor (or an opener): serves the devices it is assigned.
    return hostMain(env, choose ?? (() => platform), hooks, newDeviceChild, failed);
  }
  if (device !== undefined) return runDevice(args, env, platform, hooks);
  const opener = args.optionalString('opener');
  if (opener !== undefined) {
    const { openerMain } = await import('./opener');
    return openerMain({
      label: opener, runDir, env, pag: args.optionalString('opener-pag') === 'pagsh' ? 'pagsh' : 'keyctl',
      spareArgs: ['--platform', platform.name],
    }, hooks);
  }

  const shared = runDirProblem(runDir);
  if (shared) {
    throw new FatalError(`refusing run dir: ${shared}; other users could forge status files there ` +
      '(chown root, chmod 750, or choose --run-dir)');
  }
  // Two supervisors would both claim every device and run two processes per ring.
  const otherStatus = readStatusFiles(runDir).get('worker');
  const other = otherStatus?.pid;
  if (other !== process.pid && pidAlive(other, otherStatus?.pidStart)) {
    throw new FatalError(`another worker is already running (pid ${String(other)}, ${runDir}/status/worker.json); stop it first (systemctl stop afsfile)`);
  }
  let xs;
  try {
    xs = await connectXenStore({ env, log: stderrLine });
  } catch (e) {
    throw new FatalError((e as Error).message);
  }
  const domidText = await xs.tryRead('domid').catch(() => undefined);
  const selfDomid = domidText !== undefined && /^\d+$/.test(domidText.trim()) ? Number(domidText) : 0;
  const sup = new Supervisor({
    xs, selfDomid, runDir, env, spareArgs: ['--platform', platform.name],
    ...supervisorSettings(args, platform.name, env),
  });
  onReload = () => {
    try {
      const now = args.reread();
      sup.reconfigure(supervisorSettings(now, platform.name, env));
      stderrLine(`SIGHUP: reloaded the settings (hold-timeout ${now.number('hold-timeout')} s, fsync-interval ${now.number('fsync-interval')} s for every device now; the rest for devices claimed from now on)`);
    } catch (e) {
      stderrLine(`SIGHUP: the settings were not reloaded, the old ones stay: ${(e as Error).message}`, 'warning');
    }
  };
  const stopped = new Promise<void>((resolve) => {
    onStop = () => void sup.stop().then(resolve);
  });
  if (stopRequested) onStop!();
  await sup.start();
  const metricsFile = args.optionalString('metrics-file');
  const metrics = metricsFile ? new MetricsWriter(runDir, metricsFile, (l) => stderrLine(l, 'warning')) : undefined;
  metrics?.start();
  stderrLine(`serving backend/vbd and backend/vbd3 of domain ${selfDomid} (xenstore ${xs.endpoint.path}, platform ${platform.name})`);
  notifyReady(env, `serving domain ${selfDomid}'s block-afsfile devices`, stderrLine);
  await stopped;
  metrics?.stop();
  xs.close();
  stderrLine('stopped; devices stay connected for the next worker');
  return 0;
}

interface Hooks {
  stop(fn: () => void): void;
  reload(fn: () => void): void;
}

/** The IPC link to whoever started this device process, if any (one started by hand has none). */
function parentLink(): DeviceLink | undefined {
  const send = process.send?.bind(process);
  if (!send || !process.connected) return undefined;
  let waiting: ((v: Extract<ToDevice, { t: 'verdict' }> | undefined) => void) | undefined;
  process.on('message', (m) => {
    const x = parseToDevice(m);
    if (x?.t === 'verdict') waiting?.(x);
  });
  process.on('disconnect', () => waiting?.(undefined));
  return {
    send: (m) => new Promise<void>((resolve) => send(m, undefined, undefined, () => resolve())),
    verdict: () => new Promise((resolve) => {
      waiting = resolve;
      if (!process.connected) resolve(undefined);
    }),
  };
}

/** The data-buffer budget every device of this process shares (the first device's setting). */
let budget: { buffers: PoolBudget; kept: PoolBudget } | undefined;

/** One device's DeviceChild from its options (`worker --device B ...`). */
function newDeviceChild(
  args: ParsedArgs, env: NodeJS.ProcessEnv, platform: PlatformLoader, restarts: number, link: DeviceLink | undefined,
  hosted = false,
): DeviceChild {
  const device = args.string('device');
  const b = parseBackendPath(device);
  if (!b) throw new FatalError(`--device ${device}: expected /local/domain/<N>/backend/vbd|vbd3/<domid>/<devid>`);
  return new DeviceChild({
    backend: b, runDir: args.string('run-dir'), platform, env,
    holdTimeoutS: args.number('hold-timeout'),
    fsyncIntervalS: args.number('fsync-interval'),
    maxRequests: args.number('max-requests'),
    maxInflight: args.number('max-inflight'),
    maxIndirectSegments: args.number('max-indirect-segments'),
    maxRingPageOrder: args.number('max-ring-page-order'),
    maxQueues: args.number('max-queues'),
    direct: args.bool('direct'),
    imageRoots: imageRoots(args),
    restarts,
    lockPolicy: args.string('lock-unsupported') === 'refuse' ? 'refuse' : 'warn',
    migrationLockWaitS: args.number('migration-lock-wait'),
    link,
    hosted,
    budget: (budget ??= {
      buffers: new PoolBudget(args.number('max-inflight-process')),
      kept: new PoolBudget(args.number('max-kept-process')),
    }),
  });
}

async function runDevice(
  args: ParsedArgs, env: NodeJS.ProcessEnv, platform: PlatformLoader, hooks: Hooks,
): Promise<number> {
  const child = newDeviceChild(args, env, platform, Number(env.AFSFILE_DEVICE_RESTARTS ?? 0) || 0, parentLink());
  let stopped = false;
  hooks.stop(() => { stopped = true; void child.quiesce(); });
  hooks.reload(() => stderrLine('SIGHUP: a device process takes its settings from the supervisor (send SIGHUP there)'));
  process.on('message', (m) => {
    const t = parseRetune(m);
    if (t) child.retune(t);
  });
  // The supervisor went away (killed, crashed): quiesce so that the next one's child re-attaches
  // (and adopts the image lock this one keeps meanwhile).
  process.on('disconnect', () => void child.quiesce(true));
  if (stopped) return 0;
  return await child.run().catch((e: unknown) => failed(e));
}

/** The identities of the config file, and renew's settings they share (renew's view of the file). */
function identitySettings(args: ParsedArgs, env: NodeJS.ProcessEnv): IdentitySettings {
  const file = args.string('config');
  const explicit = args.explicit.has('config') || Boolean(env.AFSFILE_CONFIG);
  const specs = identitiesFrom(readConfigFile(file, explicit));
  const r = parseArgs('renew', [`--config=${file}`], { env, readConfig: true });
  return {
    specs,
    fallback: args.string('identity-default') === 'required' ? 'required' : 'host',
    defaults: {
      cells: r.list('cell'), lifetimeS: r.number('lifetime'), marginS: r.number('margin'), retryCapS: r.number('retry-cap'),
      aklog: r.string('aklog'), afsClient: r.string('afs-client'), pagWrapper: r.string('pag-wrapper'),
    },
  };
}

function supervisorSettings(args: ParsedArgs, platform: string, env: NodeJS.ProcessEnv): SupervisorSettings {
  return {
    identities: identitySettings(args, env),
    features: {
      maxIndirectSegments: args.number('max-indirect-segments'),
      maxRingPageOrder: args.number('max-ring-page-order'),
      maxQueues: args.number('max-queues'),
    },
    childArgs: [...childArgs(args), '--platform', platform],
    timings: { holdTimeoutS: args.number('hold-timeout'), fsyncIntervalS: args.number('fsync-interval') },
    isolation: args.string('isolation') as Isolation,
  };
}

/** Not for device processes: their own role, or the supervisor's business. */
const SUPERVISOR_ONLY = new Set(['device', 'platform', 'config', 'spare', 'opener', 'opener-pag', 'identity-default',
  'isolation']);

/** --image-roots (absolute: checked with every value, src/cli/values.ts). */
function imageRoots(args: ParsedArgs): string[] {
  return args.list('image-roots');
}

/** Given to every device process by the supervisor itself, as they are now (SIGHUP); and the
 * supervisor's own (metrics-file). */
const LIVE = new Set(['hold-timeout', 'fsync-interval', 'metrics-file']);

/** The supervisor's settings, every one with a value, passed on to each device process (but
 * the LIVE ones): the device process reads no config file. */
function childArgs(args: ParsedArgs): string[] {
  const out: string[] = [];
  for (const o of optionsFor('worker')) {
    // The child never reads the config file (src/cli/dispatch.ts): it gets every value here.
    if (SUPERVISOR_ONLY.has(o.name) || LIVE.has(o.name) || !args.has(o.name)) continue;
    if (o.type === 'boolean') { if (args.bool(o.name)) out.push(`--${o.name}`); continue; }
    if (o.type === 'list') { for (const v of args.list(o.name)) out.push(`--${o.name}=${v}`); continue; }
    const v = o.type === 'string' ? args.optionalString(o.name) : args.optionalNumber(o.name);
    if (v !== undefined) out.push(`--${o.name}=${v}`);
  }
  return out;
}

function failed(e: unknown): number {
  const msg = isXenStoreError(e) || e instanceof FatalError ? (e as Error).message : (e as Error).stack ?? String(e);
  stderrLine(msg, 'err');
  return 1;
}
