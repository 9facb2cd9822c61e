// A pid in a status file or in AFSFILE_RENEW_PID may since belong to another process: neither
// a new worker nor `status` may take it for the process that wrote it, and the device process
// must not send SIGALRM (default action: terminate) to whoever has renew's old pid now.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { processStart } from '../../src/util/proc-identity';
import { signalRenew } from '../../src/worker/renew-signal';
import { run, tempDir } from '../helpers/exe';
import { until } from '../helpers/wait';
import { type RunningWorker, startWorker, workerEnv } from '../helpers/worker';
import { type Xenstored, startXenstored } from '../helpers/xenstored';

const sleepers: ChildProcess[] = [];
function sleeper(): ChildProcess {
  const c = spawn('sleep', ['60'], { stdio: 'ignore' });
  sleepers.push(c);
  return c;
}
test.after(() => { for (const c of sleepers) c.kill('SIGKILL'); });

test('a stale worker.json whose pid is now another process: a new worker starts, status: not running', async () => {
  const tmp = tempDir('afsfile-pidreuse-');
  const runDir = path.join(tmp.dir, 'run');
  const other = sleeper();
  await until('sleep started', () => processStart(other.pid!) !== undefined);
  fs.mkdirSync(path.join(runDir, 'status'), { recursive: true });
  // As a worker that ran earlier with this pid would have left it (another start time).
  const stale = { version: '0', pid: other.pid, pidStart: '1', updated: new Date().toISOString(), role: 'supervisor' };
  fs.writeFileSync(path.join(runDir, 'status/worker.json'), JSON.stringify(stale));
  const xs: Xenstored = await startXenstored();
  const env = workerEnv(xs.socketPath, runDir);
  const st = run(['status', '--json'], { env });
  const json = JSON.parse(st.stdout) as { worker: { running: boolean } | null };
  assert.is(json.worker?.running, false, st.stdout);
  let worker: RunningWorker | undefined;
  try {
    worker = await startWorker(xs.socketPath, runDir);
    const file = path.join(runDir, 'status/worker.json');
    const now = JSON.parse(fs.readFileSync(file, 'utf8')) as { pid: number; pidStart?: string };
    assert.is(now.pid, worker.proc.pid);
    assert.is(now.pidStart, processStart(worker.proc.pid!));
  } finally {
    if (worker) await worker.stop('SIGKILL');
    await xs.stop();
    tmp.cleanup();
  }
  assert.is(other.exitCode, null, 'the other process was left alone');
});

test('SIGALRM goes to renew only: not to a process that got its pid, nor to another program', async () => {
  const s = sleeper();
  await until('sleep started', () => processStart(s.pid!) !== undefined);
  const sent: number[] = [];
  const kill = (pid: number): void => void sent.push(pid);
  const reused = signalRenew({ AFSFILE_RENEW_PID: String(s.pid), AFSFILE_RENEW_START: '1' }, kill);
  assert.equal(reused, { ok: false, pid: s.pid!, why: 'that pid is now another process (renew ended)' });
  const foreign = signalRenew({ AFSFILE_RENEW_PID: String(s.pid) }, kill);
  assert.equal(foreign, { ok: false, pid: s.pid!, why: 'that process does not run afsfile' });
  assert.equal(sent, []);
  const right = signalRenew({ AFSFILE_RENEW_PID: String(s.pid), AFSFILE_RENEW_START: processStart(s.pid!) }, kill);
  assert.equal(right, { ok: true, pid: s.pid! });
  assert.equal(sent, [s.pid]);
  assert.is(signalRenew({}), undefined);
  assert.is(s.exitCode, null);
});

test.run();
