// `afsfile worker --spare`: a device process started ahead of need (spawner.ts), which serves
// the devices its starter assigns to it: one (isolation = disk) or every device of a group
// (identity, domain). Each device is a DeviceChild of its own, with its own XenStore
// connection, platform handles (event channels, grant copy), image, io_uring, engine and
// status file, so one device's state never blocks another's: nothing on a device's path is a
// synchronous file or XenStore call, and a device that fails (its run throws, its image
// cannot be opened, its guest misbehaves) ends alone, reported as `ended` with the exit status
// a process of its own would have had. A crash of the process ends every device in it: its
// starter restarts each, and each re-attaches to its live ring as after any crash.
import type { ParsedArgs } from '../cli/parse';
import { parseArgs } from '../cli/parse';
import type { PlatformLoader } from '../xen/platform';
import { parseBackendPath } from './backend-path';
import { DeviceChild, type DeviceLink } from './device-child';
import { type FromDevice, type ToDevice, parseToDevice } from './device-link';
import { parseRetune } from './device-retune';
import { stderrLine } from './log';

interface Hooks {
  stop(fn: () => void): void;
  reload(fn: () => void): void;
}

interface Hosted {
  readonly child: DeviceChild;
  /** Waiting for the supervisor's verdict on what it opened. */
  verdict: ((v: Extract<ToDevice, { t: 'verdict' }> | undefined) => void) | undefined;
}

/** Builds one device's DeviceChild from its options (`worker --device B ...`). */
export type DeviceFactory = (args: ParsedArgs, env: NodeJS.ProcessEnv, platform: PlatformLoader, restarts: number,
  link: DeviceLink | undefined, hosted: boolean) => DeviceChild;

/** Runs until every device assigned has ended and the starter says `exit`, or a stop (SIGTERM,
 * the starter gone) has quiesced them all. */
export function hostMain(
  env: NodeJS.ProcessEnv, choose: (a: ParsedArgs) => PlatformLoader, hooks: Hooks, make: DeviceFactory,
  failed: (e: unknown) => number,
): Promise<number> {
  const send = process.send?.bind(process);
  if (!send) {
    stderrLine('--spare is for the worker\'s own use', 'err');
    return Promise.resolve(2);
  }
  const devices = new Map<string, Hosted>();
  let stopping = false;
  let exitAsked = false;
  let finish!: (code: number) => void;
  const finished = new Promise<number>((r) => (finish = r));
  const tell = (m: FromDevice): Promise<void> =>
    new Promise<void>((resolve) => {
      if (!process.connected) { resolve(); return; }
      send(m, undefined, undefined, () => resolve());
    });
  const maybeDone = (): void => {
    if (devices.size === 0 && (stopping || exitAsked)) finish(0);
  };

  const assign = (a: Extract<ToDevice, { t: 'assign' }>): void => {
    const backend = a.backend;
    if (devices.has(backend) || stopping) return;
    let child: DeviceChild;
    try {
      if (!parseBackendPath(backend)) throw new Error(`assigned ${backend}: not a backend path`);
      const args = parseArgs('worker', ['--device', backend, ...a.args], { env, readConfig: false });
      const h: Hosted = { child: undefined as unknown as DeviceChild, verdict: undefined };
      const link: DeviceLink = {
        send: (m) => tell({ ...m, backend } as FromDevice),
        verdict: () => new Promise((resolve) => {
          h.verdict = resolve;
          if (!process.connected) resolve(undefined);
        }),
      };
      child = make(args, env, choose(args), a.restarts, link, true);
      (h as { child: DeviceChild }).child = child;
      devices.set(backend, h);
    } catch (e) {
      void tell({ t: 'ended', backend, code: failed(e) });
      return;
    }
    void child.run().catch((e: unknown) => failed(e)).then((code) => {
      devices.delete(backend);
      void tell({ t: 'ended', backend, code });
      maybeDone();
    });
  };

  /** parentGone: each device keeps its image lock for the next worker's process of it; a stop
   * (SIGTERM) meanwhile ends those waits. */
  const stopAll = (parentGone: boolean): void => {
    stopping = true;
    for (const h of devices.values()) void h.child.quiesce(parentGone);
    maybeDone();
  };

  process.on('message', (raw) => {
    const m = parseToDevice(raw);
    if (m?.t === 'assign') assign(m);
    else if (m?.t === 'verdict') {
      const h = m.backend === undefined ? undefined : devices.get(m.backend);
      const v = h?.verdict;
      if (h) h.verdict = undefined;
      v?.(m);
    } else if (m?.t === 'stop') void devices.get(m.backend)?.child.quiesce();
    else if (m?.t === 'exit') { exitAsked = true; maybeDone(); }
    else {
      const t = parseRetune(raw);
      if (!t) return;
      const b = (raw as { backend?: unknown }).backend;
      for (const [backend, h] of devices) if (b === undefined || b === backend) h.child.retune(t);
    }
  });
  // The starter went away (killed, crashed): quiesce, so that the next one's devices re-attach.
  process.on('disconnect', () => {
    for (const h of devices.values()) { const v = h.verdict; h.verdict = undefined; v?.(undefined); }
    stopAll(true);
  });
  hooks.stop(() => stopAll(false));
  hooks.reload(() => stderrLine('SIGHUP: a device process takes its settings from the supervisor (send SIGHUP there)'));
  void tell({ t: 'ready' });
  return finished;
}
