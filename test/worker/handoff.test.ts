// The supervisor opens the image itself and reports afsfile-status before any device process
// runs, then hands the open fd to the device process. Proven with a device process that never
// gets going: the worker runs from a copy of dist/afsfile, and once it is up that path is
// replaced by a script that records what it was given and sleeps (a dom0 too busy to start a
// process, as under xl restore on TCG). Real xenstored; the test plays libxl.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import { setup, teardown } from '../helpers/hooks';
import * as assert from 'uvu/assert';
import type { Toolstack, VbdPaths } from '../../src/sim/toolstack';
import type { XenStoreClient } from '../../src/xen/xenstore-client';
import { until } from '../helpers/wait';
import { type WorkerRig, startWorkerRig } from '../helpers/worker-rig';

let rig: WorkerRig;
let c: XenStoreClient;
let ts: Toolstack;
let marks: string;
let nextDomid = 30;

setup(test, async () => {
  rig = await startWorkerRig('afsfile-handoff-', { copyExe: true });
  ({ c, ts } = rig);
  const exe = rig.exe;
  marks = path.join(rig.dir, 'marks');
  fs.mkdirSync(marks);
  // The running supervisor keeps its (now unlinked) image; the next exec of the path gets this.
  const standIn = `${exe}.new`;
  fs.writeFileSync(standIn, `#!/bin/sh
dev=$(echo "$*" | sed 's|.*--device [^ ]*/\\([0-9]*\\)/\\([0-9]*\\).*|\\1-\\2|')
{ echo "fd=$AFSFILE_IMAGE_FD path=$AFSFILE_IMAGE_PATH access=$AFSFILE_IMAGE_ACCESS"
  readlink "/proc/self/fd/$AFSFILE_IMAGE_FD"
  echo "$*"; } > "${marks}/$dev.tmp" && mv "${marks}/$dev.tmp" "${marks}/$dev"
exec sleep 120
`, { mode: 0o755 });
  fs.renameSync(standIn, exe);
});

teardown(test, () => rig?.close());

function image(name: string): string {
  const p = path.join(rig.dir, name);
  fs.writeFileSync(p, Buffer.alloc(0));
  fs.truncateSync(p, 1 << 20);
  return p;
}

async function guest(target: string, access: 'rw' | 'ro' = 'rw'): Promise<VbdPaths> {
  const domid = nextDomid++;
  await ts.createDomain(domid);
  return ts.addVbd({ domid, target, access });
}

async function status(p: VbdPaths): Promise<{ status: string; error: string | undefined }> {
  const s = await until(`${p.backend}/afsfile-status`, () => c.tryRead(`${p.backend}/afsfile-status`), 10_000);
  return { status: s, error: await c.tryRead(`${p.backend}/afsfile-error`) };
}

const mark = (p: VbdPaths): string => path.join(marks, `${p.domid}-${p.devid}`);

test('opened is reported before the device process runs; the process gets the open image as fd 4', async () => {
  const img = image('a.img');
  const p = await guest(img);
  assert.equal(await status(p), { status: 'opened', error: undefined });
  const [given, target, argv] = (await until('the stand-in ran', () => fs.existsSync(mark(p)) && fs.readFileSync(mark(p), 'utf8'))).split('\n');
  assert.is(given, `fd=4 path=${img} access=rw`);
  assert.is(target, fs.realpathSync(img), 'fd 4 is the image itself');
  assert.match(argv!, `worker --device ${p.backend}`);

  const ro = image('b.img');
  const q = await guest(ro, 'ro');
  assert.equal(await status(q), { status: 'opened', error: undefined });
  assert.match(await until('the ro stand-in ran', () => fs.existsSync(mark(q)) && fs.readFileSync(mark(q), 'utf8')), `path=${ro} access=ro`);
});

test('an image that cannot be opened, or is taken: the supervisor reports it and starts no process', async () => {
  const missing = await guest(path.join(rig.dir, 'missing.img'));
  assert.match((await status(missing)).error ?? '', /missing\.img: does not exist/);
  const busyImg = image('d.img');
  const first = await guest(busyImg);
  assert.is((await status(first)).status, 'opened');
  const second = await guest(busyImg);
  const refused = await status(second);
  assert.match(refused.error ?? '', new RegExp(`in use read-write by domain ${first.domid}`));
  assert.is(refused.status, 'busy', 'a conflict is busy (the script passes it on to xl)');
  const entries = (JSON.parse(fs.readFileSync(path.join(rig.dir, 'run/status/worker.json'), 'utf8')) as { devices: Array<{ backend: string; phase: string; childPid?: number }> }).devices;
  const entry = (p: VbdPaths) => entries.find((e) => e.backend === p.backend);
  assert.is(entry(missing)?.phase, 'failed');
  assert.is(entry(missing)?.childPid, undefined);
  assert.is(entry(second)?.phase, 'refused');
  assert.is(entry(second)?.childPid, undefined);
  assert.not.ok(fs.existsSync(mark(missing)), 'no process for the missing image');
  assert.not.ok(fs.existsSync(mark(second)), 'no process for the refused one');
  assert.ok(typeof entry(first)?.childPid === 'number');
  // libxl removes a device in error: the supervisor answers Closed for it.
  assert.ok((await ts.removeVbd(missing, { timeoutMs: 5000 })).closed);
});

test('SIGTERM: the supervisor stops its device processes (here the stand-ins) and exits 0', async () => {
  const t0 = Date.now();
  assert.is(await rig.worker.stop('SIGTERM'), 0);
  assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`);
});

test.run();
