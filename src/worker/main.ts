// `afsfile worker`: the supervisor, or with --device one device's process (DESIGN contracts,
// Process model, Signals).
import type { CommandContext } from '../cli/commands';
import { FatalError } from '../cli/errors';
import { optionsFor } from '../cli/options';
import type { ParsedArgs } from '../cli/parse';
import { isXenStoreError } from '../xen/xenstore';
import { connectXenStore } from '../xen/xenstore-client';
import { parseBackendPath } from './backend-path';
import { DeviceChild } from './device-child';
import { stderrLine } from './log';
import { choosePlatform } from './platform-choice';
import { pidAlive, readStatusFiles } from './status-file';
import { Supervisor } from './supervisor';

export async function workerMain(args: ParsedArgs, ctx: CommandContext): Promise<number> {
  // Handlers first (contract: every role installs them at the top of its entry point).
  let onStop: (() => void) | undefined;
  let stopRequested = false;
  const stop = (): void => { stopRequested = true; onStop?.(); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => stderrLine('SIGHUP: the worker has no reloadable settings yet; restart it to apply config changes'));

  const platform = choosePlatform(args.string('platform'));
  const runDir = args.string('run-dir');
  const device = args.optionalString('device');
  const env = ctx.env;

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
      restarts: Number(env.AFSFILE_DEVICE_RESTARTS ?? 0) || 0,
    });
    onStop = () => void child.quiesce();
    // The supervisor went away (killed, crashed): quiesce so that the next one's child re-attaches.
    process.on('disconnect', () => void child.quiesce());
    if (stopRequested) return 0;
    return await child.run().catch((e: unknown) => failed(e));
  }

  // Two supervisors would both claim every device and run two processes per ring.
  const other = readStatusFiles(runDir).get('worker')?.pid;
  if (other !== process.pid && pidAlive(other)) {
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
    xs, selfDomid, runDir, env,
    features: {
      maxIndirectSegments: args.number('max-indirect-segments'),
      maxRingPageOrder: args.number('max-ring-page-order'),
      maxQueues: args.number('max-queues'),
    },
    direct: args.bool('direct'),
    childArgs: [...childArgs(args), '--platform', platform],
  });
  const stopped = new Promise<void>((resolve) => {
    onStop = () => void sup.stop().then(resolve);
  });
  if (stopRequested) onStop!();
  await sup.start();
  stderrLine(`serving backend/vbd and backend/vbd3 of domain ${selfDomid} (xenstore ${xs.endpoint.path}, platform ${platform})`);
  await stopped;
  xs.close();
  stderrLine('stopped; devices stay connected for the next worker');
  return 0;
}

/** The supervisor's own options, passed on to each device process. */
function childArgs(args: ParsedArgs): string[] {
  const out: string[] = [];
  for (const o of optionsFor('worker')) {
    if (o.name === 'device' || o.name === 'platform' || !args.has(o.name)) continue;
    // The child finds the same file the same way (flag, AFSFILE_CONFIG or the default).
    if (o.name === 'config' && !args.explicit.has('config')) continue;
    if (o.type === 'boolean') { if (args.bool(o.name)) out.push(`--${o.name}`); continue; }
    if (o.type === 'list') { for (const v of args.list(o.name)) out.push(`--${o.name}=${v}`); continue; }
    const v = o.type === 'string' ? args.optionalString(o.name) : args.optionalNumber(o.name);
    if (v !== undefined) out.push(`--${o.name}=${v}`);
  }
  return out;
}

function failed(e: unknown): number {
  const msg = isXenStoreError(e) || e instanceof FatalError ? (e as Error).message : (e as Error).stack ?? String(e);
  stderrLine(msg);
  return 1;
}
