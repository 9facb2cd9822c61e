// A worker whose log cannot be written (stderr on a full file system, /dev/full: every write
// fails ENOSPC) keeps serving: in a dom0 whose /var/log filled up, the debug line written when a
// device went away threw ENOSPC out of Node's stderr stream and took the supervisor down.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Toolstack } from '../../src/sim/toolstack';
import { connectXenStore } from '../../src/xen/xenstore-client';
import { EXE, tempDir } from '../helpers/exe';
import { until } from '../helpers/wait';
import { workerEnv } from '../helpers/worker';
import { startXenstored } from '../helpers/xenstored';

test('stdout and stderr on /dev/full: the worker claims, serves and removes devices, and stops cleanly', async () => {
  const tmp = tempDir('afsfile-logfull-');
  const xsd = await startXenstored();
  const c = await connectXenStore({ env: { XENSTORED_PATH: xsd.socketPath } });
  const full = fs.openSync('/dev/full', 'w');
  const runDir = path.join(tmp.dir, 'run');
  const w = spawn(EXE, ['worker', '--platform', 'sim'], {
    env: workerEnv(xsd.socketPath, runDir, { DEBUG: 'afsfile:*' }), stdio: ['ignore', full, full],
  });
  const exited = new Promise<number | null>((r) => w.once('exit', (code) => r(code)));
  try {
    await until('worker status', () => fs.existsSync(path.join(runDir, 'status/worker.json')), 15_000);
    const ts = new Toolstack(c);
    const img = path.join(tmp.dir, 'a.img');
    fs.writeFileSync(img, '');
    fs.truncateSync(img, 1 << 20);
    await ts.createDomain(7);
    const p = await ts.addVbd({ domid: 7, target: img });
    assert.ok(await ts.waitBackendState(p, 2, 10_000), 'claimed (InitWait) while every log line fails');
    assert.is(await until('opened', () => c.tryRead(`${p.backend}/afsfile-status`), 10_000), 'opened');
    w.kill('SIGHUP'); // a reload logs a line too
    await ts.removeVbd(p, { timeoutMs: 10_000 });
    await sleep(500);
    assert.is(w.exitCode, null, 'still running after the device went away');
    w.kill('SIGTERM');
    assert.is(await exited, 0);
  } finally {
    if (w.exitCode === null) w.kill('SIGKILL');
    fs.closeSync(full);
    c.close();
    await xsd.stop();
    tmp.cleanup();
  }
});

test.run();
