// Who opens the images: each device process its own, inside the PAG it inherited; the
// supervisor holds none (an exec in a new child would close them, and on AFS or FUSE that close
// can hang the spawn), and gets (dev, ino, realpath) for its exclusivity verdict. The hotplug
// wait never includes starting a process: a spare device process started ahead serves the
// next attach. Proven with a worker running from a copy of dist/afsfile whose path is then
// replaced by a stand-in that records what it was given and sleeps (a dom0 too busy to start
// a process, as under xl restore on TCG). Real xenstored; the test plays libxl. Every disk has
// a process of its own here (isolation = disk), so that each attach takes the spare;
// device-host.test.ts has the attaches a running host serves.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import { setup, teardown } from '../helpers/hooks';
import * as assert from 'uvu/assert';
import type { Toolstack, VbdPaths } from '../../src/sim/toolstack';
import type { XenStoreClient } from '../../src/xen/xenstore-client';
import { until } from '../helpers/wait';
import { type WorkerRig, startWorkerRig } from '../helpers/worker-rig';
import { sparseFile } from '../helpers/temp';

let rig: WorkerRig;
let c: XenStoreClient;
let ts: Toolstack;
let marks: string;
let nextDomid = 30;

setup(test, async () => {
  rig = await startWorkerRig('afsfile-handoff-', { copyExe: true, workerArgs: ['--isolation=disk'] });
  ({ c, ts } = rig);
  marks = path.join(rig.dir, 'marks');
  fs.mkdirSync(marks);
});

teardown(test, () => rig?.close());

function image(name: string): string {
  return sparseFile(rig.dir, name);
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

const workerJson = (): { devices?: Entry[]; spare?: { ready: boolean } } =>
  JSON.parse(fs.readFileSync(path.join(rig.runDir, 'status/worker.json'), 'utf8')) as { devices?: Entry[] };
type Entry = { backend: string; phase: string; childPid?: number };
const entries = (): Entry[] => {
  try {
    return workerJson().devices ?? [];
  } catch {
    return [];
  }
};
const entry = (p: VbdPaths): Entry | undefined => entries().find((e) => e.backend === p.backend);

/** The files a process has open (readlink of /proc/PID/fd/*). */
function openFiles(pid: number): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try { out.push(fs.readlinkSync(`/proc/${pid}/fd/${fd}`)); } catch { /* closed meanwhile */ }
  }
  return out;
}

const cmdline = (pid: number): string[] => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');

const spareReady = (): Promise<unknown> => until('a ready spare', () => {
  try {
    return workerJson().spare?.ready;
  } catch {
    return false;
  }
}, 15_000);

test('the device process opens its image; the supervisor holds none; failures and conflicts are reported', async () => {
  await spareReady();
  const img = image('a.img');
  const p = await guest(img);
  assert.equal(await status(p), { status: 'opened', error: undefined });
  const pid = await until('its process', () => entry(p)?.childPid);
  assert.ok(openFiles(pid).includes(fs.realpathSync(img)), 'the device process has the image open');
  assert.not.ok(openFiles(rig.worker.proc.pid!).some((f) => f.endsWith('.img')), 'the supervisor has no image open');
  assert.ok(cmdline(pid).includes('--spare'), `served by a spare started before the attach: ${cmdline(pid).join(' ')}`);

  const missing = await guest(path.join(rig.dir, 'missing.img'));
  assert.match((await status(missing)).error ?? '', /missing\.img: does not exist/);
  const second = await guest(img);
  const refused = await status(second);
  assert.match(refused.error ?? '', new RegExp(`in use read-write by domain ${p.domid}`));
  assert.is(refused.status, 'busy', 'a conflict is busy (the script passes it on to xl)');
  await until('the refused and failed devices have no process',
    () => entry(missing)?.childPid === undefined && entry(second)?.childPid === undefined);
  assert.is(entry(missing)?.phase, 'failed');
  assert.is(entry(second)?.phase, 'refused');
  assert.is(entry(p)?.childPid, pid, 'the first device keeps its process');
  assert.ok(openFiles(pid).includes(fs.realpathSync(img)));
  // libxl removes a device in error: the supervisor answers Closed for it.
  assert.ok((await ts.removeVbd(missing, { timeoutMs: 5000 })).closed);
  assert.ok((await ts.removeVbd(second, { timeoutMs: 5000 })).closed);
});

test('opened is reported by a process started before the attach, even when no new process can start', async () => {
  // The next exec of the path gets this stand-in: it never says ready, never opens anything.
  const standIn = `${rig.exe}.new`;
  fs.writeFileSync(standIn, `#!/bin/sh
n=$(date +%s%N)
echo "$*" > "${marks}/$n.tmp" && mv "${marks}/$n.tmp" "${marks}/$n"
exec sleep 120
`, { mode: 0o755 });
  await spareReady();
  fs.renameSync(standIn, rig.exe);
  // The spare started after the last attach ran the real executable: it serves this one.
  const b = await guest(image('b.img'), 'ro');
  assert.equal(await status(b), { status: 'opened', error: undefined });
  // The spare after it is a stand-in, never ready: the next attach is given to it all the same
  // (told its device once it says ready; a restarted worker's devices all come at once).
  const marked = (): string[] => fs.readdirSync(marks).map((f) => fs.readFileSync(path.join(marks, f), 'utf8'));
  await until('a stand-in spare', () => marked().some((t) => t.includes('--spare')));
  const d = await guest(image('d.img'));
  const pid = await until('a process for the device', () => entry(d)?.childPid);
  assert.equal(cmdline(pid).slice(0, 2), ['sleep', '120'], 'the stand-in spare has it');
  await until('another stand-in spare', () => marked().filter((t) => t.includes('--spare')).length >= 2);
  assert.is(await c.tryRead(`${d.backend}/afsfile-status`), undefined,
    'nobody opened d.img: the supervisor opens nothing');
});

test('SIGTERM: the supervisor stops its device processes (here the stand-ins too) and exits 0', async () => {
  const t0 = Date.now();
  assert.is(await rig.worker.stop('SIGTERM'), 0);
  assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`);
});

test.run();
