// Control-path latencies against the real xenstored and the real worker:
// - claim: the toolstack's vbd write → the worker's InitWait (libxl waits up to 10 s; target < 100 ms);
// - hotplug add: `block-afsfile add` start to exit with the worker's verdict already there (the
//   script's own cost), side by side with one `xenstore-read` (a C client's single round trip).
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Toolstack } from '../src/sim/toolstack';
import { connectXenStore } from '../src/xen/xenstore-client';
import { startWorker } from '../test/helpers/worker';
import { startXenstored } from '../test/helpers/xenstored';
import { type Row, progress } from './report';
import { summarize } from './stats';

const ROOT = path.resolve(__dirname, '../..');
const EXE = path.join(ROOT, 'dist/afsfile');

function timeSpawn(cmd: string, args: string[], env: NodeJS.ProcessEnv): { ms: number; status: number | null } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env, stdio: 'ignore' });
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, status: r.status };
}

export async function benchControlPath(rounds: number): Promise<Row[]> {
  progress(`control path: xenstored + worker, ${rounds} devices`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'afsfile-bench-cp-'));
  const xsd = await startXenstored();
  const runDir = path.join(tmp, 'run');
  const worker = await startWorker(xsd.socketPath, runDir);
  const xs = await connectXenStore({ env: { XENSTORED_PATH: xsd.socketPath } });
  try {
    const ts = new Toolstack(xs);
    const script = path.join(tmp, 'block-afsfile');
    fs.symlinkSync(EXE, script);
    const img = path.join(tmp, 'a.img');
    fs.writeFileSync(img, '');
    fs.truncateSync(img, 1 << 20);
    const claim: number[] = [];
    const add: number[] = [];
    const read: number[] = [];
    const version: number[] = [];
    const ratio: number[] = [];
    const ratioC: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const domid = 100 + i;
      await ts.createDomain(domid);
      const backend = `/local/domain/0/backend/vbd/${domid}/51712`;
      let claimedAt = 0;
      const w = await xs.watch(`${backend}/state`, () => void xs.tryRead(`${backend}/state`).then((v) => { if (v === '2' && !claimedAt) claimedAt = performance.now(); }));
      const t0 = performance.now();
      const p = await ts.addVbd({ domid, target: img, access: 'ro' });
      while (!claimedAt || (await xs.tryRead(`${backend}/afsfile-status`)) !== 'opened') await sleep(5);
      await w.close();
      claim.push(claimedAt - t0);
      const env = { script: '/etc/xen/scripts/block-afsfile', XENBUS_TYPE: 'vbd', XENBUS_PATH: `backend/vbd/${domid}/51712`, XENBUS_BASE_PATH: 'backend', XENSTORED_PATH: xsd.socketPath, AFSFILE_HOTPLUG_LOG: path.join(tmp, 'hotplug.log') };
      const a = timeSpawn(script, ['add'], env);
      if (a.status !== 0) throw new Error(`block-afsfile add exited ${a.status}: ${fs.readFileSync(path.join(tmp, 'hotplug.log'), 'utf8')}`);
      const b = timeSpawn('xenstore-read', [`${backend}/params`], { XENSTORED_PATH: xsd.socketPath });
      const v = timeSpawn(EXE, ['--version'], { PATH: process.env.PATH });
      add.push(a.ms);
      read.push(b.ms);
      version.push(v.ms);
      ratio.push(a.ms / v.ms);
      ratioC.push(a.ms / b.ms);
      await ts.removeVbd(p, { timeoutMs: 10_000 });
    }
    const claimSummary = summarize(claim);
    return [
      { section: 'control', name: 'claim: toolstack write → InitWait', unit: 'ms', better: 'lower', value: claimSummary, target: `< 100 ms (p99 ${claimSummary.p99.toFixed(1)} ms)` },
      { section: 'control', name: 'block-afsfile add (verdict ready)', unit: 'ms', better: 'lower', value: summarize(add),
        baseline: { name: 'afsfile --version (start-up alone)', value: summarize(version) }, ratio: summarize(ratio), target: 'well inside libxl\'s 40 s' },
      { section: 'control', name: 'block-afsfile add (verdict ready)', unit: 'ms', better: 'lower', value: summarize(add),
        baseline: { name: 'xenstore-read (C, one round trip)', value: summarize(read) }, ratio: summarize(ratioC) },
    ];
  } finally {
    xs.close();
    await worker.stop('SIGTERM');
    await xsd.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
