// block-afsfile add, as libxl runs it, against a worker rig: the executable through a link of
// that name, libxl's environment only (plus the rig's xenstored, run dir and config), the
// hotplug log in the rig's dir and no syslog (the host's is not the test's).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WorkerRig } from './worker-rig';

export interface HotplugRun {
  readonly status: number | null;
  /** stdout and stderr together. */
  readonly output: string;
  /** The whole xen-hotplug.log of the rig so far. */
  readonly log: string;
}

export function hotplugAdd(rig: WorkerRig, backend: string): Promise<HotplugRun> {
  const link = path.join(rig.dir, 'block-afsfile');
  if (!fs.existsSync(link)) fs.symlinkSync(rig.exe, link);
  const log = path.join(rig.dir, 'xen-hotplug.log');
  const env = {
    XENBUS_TYPE: backend.includes('/vbd3/') ? 'vbd3' : 'vbd', XENBUS_BASE_PATH: 'backend',
    XENBUS_PATH: backend.replace(/^\/local\/domain\/0\//, ''), XENSTORED_PATH: rig.xs.socketPath,
    AFSFILE_HOTPLUG_LOG: log, AFSFILE_HOTPLUG_SYSLOG: 'none',
    AFSFILE_RUN_DIR: rig.runDir, AFSFILE_CONFIG: path.join(rig.dir, 'afsfile.conf'),
  };
  return new Promise((resolve, reject) => {
    const child = spawn(link, ['add'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('close', (status) =>
      resolve({ status, output, log: fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '' }));
  });
}
