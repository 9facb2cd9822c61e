// `afsfile worker`: the supervisor, or with --device one device's process (DESIGN contracts,
// Process model, Signals).
import { FatalError } from '../cli/errors';
import { optionsFor } from '../cli/options';
import type { ParsedArgs } from '../cli/parse';
import type { PlatformLoader } from '../xen/platform';
import { isXenStoreError } from '../xen/xenstore';
import { connectXenStore } from '../xen/xenstore-client';
import { parseBackendPath } from './backend-path';
import { DeviceChild } from './device-child';
import { stderrLine } from './log';
import { MetricsWriter } from './metrics';
import { notifyReady } from './sd-notify';
import { pidAlive, readStatusFiles, runDirProblem } from './status-file';
import { parseRetune } from './device-retune';
import { Supervisor, type SupervisorSettings } from './supervisor';

/** `platform`: chosen by the caller (cli), the composition root; loaded in device processes. */
export async function workerMain(args: ParsedArgs, env: NodeJS.ProcessEnv, platform: PlatformLoader): Promise<number> {
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

  if (device !== undefined) {
    const b = parseBackendPath(device);
    if (!b) throw new FatalError(`--device ${device}: expected /local/domain/<N>/backend/vbd|vbd3/<domid>/<devid>`);
    const child = new DeviceChild({
      backend: b, runDir, platform, env,
      holdTimeoutS: args.number('hold-timeout'),
      fsyncIntervalS: args.number('fsync-interval'),
      maxRequests: args.number('max-requests'),
      maxInflight: args.number('max-inflight'),
      maxIndirectSegments: args.number('max-indirect-segments'),
      maxRingPageOrder: args.number('max-ring-page-order'),
      maxQueues: args.number('max-queues'),
      direct: args.bool('direct'),
      imageRoots: imageRoots(args),
      restarts: Number(env.AFSFILE_DEVICE_RESTARTS ?? 0) || 0,
    });
    onStop = () => void child.quiesce();
    onReload = () => stderrLine('SIGHUP: a device process takes its settings from the supervisor (send SIGHUP there)');
    process.on('message', (m) => {
      const t = parseRetune(m);
      if (t) child.retune(t);
    });
    // The supervisor went away (killed, crashed): quiesce so that the next one's child re-attaches.
    process.on('disconnect', () => void child.quiesce());
    if (stopRequested) return 0;
    return await child.run().catch((e: unknown) => failed(e));
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
  const sup = new Supervisor({ xs, selfDomid, runDir, env, ...supervisorSettings(args, platform.name) });
  onReload = () => {
    try {
      const now = args.reread();
      sup.reconfigure(supervisorSettings(now, platform.name));
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

function supervisorSettings(args: ParsedArgs, platform: string): SupervisorSettings {
  return {
    features: {
      maxIndirectSegments: args.number('max-indirect-segments'),
      maxRingPageOrder: args.number('max-ring-page-order'),
      maxQueues: args.number('max-queues'),
    },
    direct: args.bool('direct'),
    imageRoots: imageRoots(args),
    childArgs: [...childArgs(args), '--platform', platform],
    timings: { holdTimeoutS: args.number('hold-timeout'), fsyncIntervalS: args.number('fsync-interval') },
  };
}

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
    if (o.name === 'device' || o.name === 'platform' || o.name === 'config' || LIVE.has(o.name) || !args.has(o.name)) continue;
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
