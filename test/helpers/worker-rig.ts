// What the worker tests share: a private xenstored, a client on it, the test as libxl
// (src/sim/toolstack.ts), a temp dir with the run dir and config file, and a running worker.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Toolstack } from '../../src/sim/toolstack';
import { type XenStoreClient, connectXenStore } from '../../src/xen/xenstore-client';
import { EXE } from './exe';
import { descendants, killAll } from './proc-tree';
import { tempDir } from './temp';
import { unwinding } from './hooks';
import { type RunningWorker, startWorker } from './worker';
import { type Xenstored, startXenstored } from './xenstored';

export interface WorkerRig {
  readonly xs: Xenstored;
  readonly c: XenStoreClient;
  readonly ts: Toolstack;
  /** The temp dir: run dir `run/`, config file `afsfile.conf`, whatever the test puts there. */
  readonly dir: string;
  readonly runDir: string;
  /** The executable the worker runs from (a copy in `dir` with `copyExe`). */
  readonly exe: string;
  readonly worker: RunningWorker;
  /** Kills `current` (default: the rig's worker) if it still runs, stops xenstored, removes dir. */
  close(current?: RunningWorker): Promise<void>;
}

export interface WorkerRigOptions {
  /** Contents of the config file the worker reads (AFSFILE_CONFIG); default: empty. */
  readonly config?: string;
  /** Run the worker from a copy of dist/afsfile in `dir` (a test may then replace that path). */
  readonly copyExe?: boolean;
  readonly workerArgs?: string[];
  /** More environment for the worker (e.g. KRB5_CONFIG, a PATH with test tools first). */
  readonly env?: NodeJS.ProcessEnv;
}

export function startWorkerRig(prefix: string, o: WorkerRigOptions = {}): Promise<WorkerRig> {
  return unwinding((undo) => makeRig(prefix, o, undo));
}

async function makeRig(prefix: string, o: WorkerRigOptions, undo: (fn: () => unknown) => void): Promise<WorkerRig> {
  const tmp = tempDir(prefix);
  undo(tmp.cleanup);
  const runDir = path.join(tmp.dir, 'run');
  if (o.config !== undefined) fs.writeFileSync(path.join(tmp.dir, 'afsfile.conf'), o.config); // the file workerEnv names
  let exe = EXE;
  if (o.copyExe) {
    exe = path.join(tmp.dir, 'afsfile');
    fs.copyFileSync(EXE, exe);
    fs.chmodSync(exe, 0o755);
  }
  const xs = await startXenstored();
  undo(() => xs.stop());
  const c = await connectXenStore({ env: { XENSTORED_PATH: xs.socketPath } });
  undo(() => c.close());
  const worker = await startWorker(xs.socketPath, runDir, o.workerArgs ?? [], exe, o.env);
  return {
    xs, c, ts: new Toolstack(c), dir: tmp.dir, runDir, exe, worker,
    close: async (current = worker) => {
      // Its device processes outlive a killed worker (they wait for a successor to adopt their
      // locked images) and would write into the dir being removed: they go too, by PID.
      const left = current.proc.pid === undefined ? [] : descendants(current.proc.pid);
      if (current.proc.exitCode === null && current.proc.signalCode === null) await current.stop('SIGKILL');
      killAll(left);
      c.close();
      await xs.stop();
      tmp.cleanup();
    },
  };
}
