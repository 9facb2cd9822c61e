// `afsfile worker --opener LABEL`: one per-domain identity's process (DESIGN "Identities and
// openers"), started by the supervisor through the PAG wrapper (`keyctl session -` for kAFS,
// pagsh for OpenAFS, as renew re-executes itself), so that it runs in a PAG of its own. It
// renews the identity's tickets and tokens (src/renew's loop: the same schedule, back-off,
// SIGALRM refresh and status, into status/identity-LABEL.json, the cache under
// <run-dir>/identities/LABEL, 0700) and starts the identity's device processes, which inherit
// its PAG and open their images in it. It opens no image itself, and passes messages between
// its device processes and the supervisor.
import * as path from 'node:path';
import { prepareCcacheDir } from '../renew/ccache';
import { Renewer } from '../renew/loop';
import { checkOpenAfsPag } from '../renew/main';
import { identityStatusName } from '../renew/status';
import { processStart } from '../util/proc-identity';
import { stderrLine } from './log';
import { type FromOpener, type OpenerConfig, parseToOpener } from './opener-link';
import { type DeviceProc, LocalSpawner } from './spawner';

export interface OpenerOptions {
  readonly label: string;
  readonly runDir: string;
  readonly env: NodeJS.ProcessEnv;
  /** How the PAG was made (the supervisor chose the wrapper). */
  readonly pag: 'keyctl' | 'pagsh';
  /** Options each spare device process starts with (the platform). */
  readonly spareArgs: readonly string[];
}

export function identityCcache(runDir: string, label: string): string {
  return path.join(runDir, 'identities', label, 'krb5cc');
}

export async function openerMain(o: OpenerOptions, hooks: {
  stop(fn: () => void): void; reload(fn: () => void): void;
}): Promise<number> {
  const send = process.send?.bind(process);
  if (!send) {
    stderrLine(`--opener is for the worker's own use`, 'err');
    return 2;
  }
  const tag = `identity ${o.label}`;
  if (o.pag === 'pagsh') await checkOpenAfsPag(o.env);
  // Nothing of renew's (the host identity's) reaches this identity or its devices.
  const env = { ...o.env };
  for (const k of ['KRB5CCNAME', 'AFSFILE_RENEW_PID', 'AFSFILE_RENEW_START']) delete env[k];
  const ccache = identityCcache(o.runDir, o.label);
  prepareCcacheDir(ccache, true);

  let renewer: Renewer | undefined;
  // SIGALRM: a device of this identity met EACCES (or a key error): refresh now (as renew).
  process.on('SIGALRM', () => renewer?.kick());
  const configure = (c: OpenerConfig): void => {
    const settings = {
      keytab: c.keytab, principal: c.principal, cells: c.cells, lifetimeS: c.lifetimeS,
      timing: { marginMs: c.marginS * 1000, retryCapMs: c.retryCapS * 1000 }, aklog: c.aklog, afsClient: c.afsClient,
    };
    if (renewer) { renewer.reconfigure(settings); return; }
    renewer = new Renewer({
      ...settings, ccache, runDir: o.runDir, pag: o.pag, env, statusName: identityStatusName(o.label),
      say: (l) => stderrLine(`${tag}: ${l}`),
    });
    renewer.setChild(null);
    renewer.start();
  };

  // Device processes: kick this opener on token errors, read this identity's renewals.
  const spawner = new LocalSpawner({
    ...env, AFSFILE_IDENTITY: o.label, AFSFILE_RENEW_PID: String(process.pid),
    AFSFILE_RENEW_START: processStart(process.pid) ?? '',
  }, o.spareArgs, tag);
  const procs = new Map<string, DeviceProc>();
  const tell = (m: FromOpener): void => { if (process.connected) send(m); };

  let finish!: (code: number) => void;
  const finished = new Promise<number>((r) => (finish = r));
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    spawner.close();
    // SIGTERM: each device quiesces (drain, fsync, XenStore left as it is) for the next worker.
    const running = [...procs.values()].filter((p) => p.running());
    for (const p of running) p.kill('SIGTERM');
    await Promise.all(running.map((p) => Promise.race([p.exited, new Promise((r) => setTimeout(r, 15_000))])));
    for (const p of running) if (p.running()) p.kill('SIGKILL');
    // Device hosts exit a moment after their last device ended.
    await Promise.race([spawner.allEnded(), new Promise((r) => setTimeout(r, 5000).unref())]);
    await renewer?.stop();
    finish(0);
  };
  hooks.stop(() => void stop());
  hooks.reload(() => undefined); // the supervisor sends the identity's settings
  // The supervisor went away (killed, crashed): this process leaves without signalling its device
  // processes. Each then sees its own parent go and quiesces as the host identity's do when the
  // supervisor dies: it keeps its image lock and status file for the next worker's process, which
  // adopts the lock (src/image/lock.ts), instead of closing the image and locking it anew.
  process.on('disconnect', () => {
    if (stopping) return;
    stopping = true;
    spawner.close();
    void (renewer?.stop() ?? Promise.resolve()).finally(() => finish(0));
  });

  process.on('message', (raw) => {
    const m = parseToOpener(raw);
    if (!m || stopping) return;
    if (m.t === 'config') { configure(m.config); return; }
    if (m.t === 'start') {
      const backend = m.backend;
      const p: DeviceProc = spawner.start(backend, m.args, m.restarts, {
        message: (dm) => tell({ t: 'from-device', backend, m: dm }),
        exit: (code, signal, shared) => {
          if (procs.get(backend) === p) procs.delete(backend);
          tell({ t: 'exit', backend, code, signal, ...(shared ? { shared } : {}) });
        },
      }, m.group);
      procs.set(backend, p);
      tell({ t: 'started', backend, pid: p.pid });
      return;
    }
    const p = procs.get(m.backend);
    if (m.t === 'to-device') p?.send(m.m);
    else p?.kill(m.signal);
  });
  spawner.begin();
  return finished;
}
