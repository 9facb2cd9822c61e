// The lock keeper (src/native/keeper/lock-keeper.c): where the file system owns a flock by
// process (OpenAFS), a process of its own holds the image lock and the device holds a socket to
// it. Real keepers and real flock on a local file, chosen by passing OpenAFS's magic to
// lockImage; the other host is another process (util-linux flock). What OpenAFS itself does with
// them is tested under Xen (test/xen, afs-openafs-lock-second and -lease).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { adoptLock, type ImageLock, lockImage, verifyLock } from '../../src/image/lock';
import { checkFinding } from '../helpers/check-finding';
import { noExecveatWrapper, repoRoot } from '../helpers/no-uring';
import { withTempDir } from '../helpers/temp';
import { until } from '../helpers/wait';

/** src/afs/afs_osi.h AFS_SUPER_MAGIC: lockImage makes a keeper for it (lock-fs.ts lockNeedsKeeper). */
const OPENAFS_MAGIC = 0x5346414f;

function othersLock(file: string, shared = false): boolean {
  return spawnSync('flock', ['--nonblock', shared ? '--shared' : '--exclusive', file, 'true']).status === 0;
}

function alive(pid: number): boolean {
  return fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
}

function image(dir: string): string {
  const file = path.join(dir, 'disk.img');
  fs.writeFileSync(file, Buffer.alloc(1 << 16));
  return file;
}

async function keeperLock(file: string, writable: boolean): Promise<ImageLock> {
  const fd = fs.openSync(file, writable ? 'r+' : 'r');
  try {
    const r = await lockImage(fd, file, writable, 'refuse', OPENAFS_MAGIC);
    if (!r.ok) throw new Error(r.message);
    return r.lock;
  } finally {
    fs.closeSync(fd); // as a reopen does: the device's own closes must release nothing
  }
}

function released(lock: ImageLock): Promise<void> {
  return new Promise((r) => lock.release(r));
}

test('a keeper holds the lock: its own process, small, not our child, its own open file',
  () => withTempDir(async (dir) => {
  const file = image(dir);
  const lock = await keeperLock(file, true);
  const { keeper, state, fd, reach } = lock.status();
  assert.is(state, 'held');
  assert.is(reach, 'afs');
  assert.ok(keeper !== undefined && keeper > 0 && keeper !== process.pid, `keeper ${keeper}`);
  const status = fs.readFileSync(`/proc/${keeper}/status`, 'utf8');
  assert.match(status, /^Name:\s+afsfile-lock$/m);
  assert.not.match(status, new RegExp(`^PPid:\\s+${process.pid}$`, 'm'));
  const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
  assert.ok(rss > 0 && rss < 1024, `keeper RSS ${rss} kB`);
  // Its descriptors: the image (an open file of its own) and the socket, nothing else of ours.
  assert.equal(fs.readdirSync(`/proc/${keeper}/fd`).sort(), ['0', '1']);
  assert.is(fs.realpathSync(`/proc/${keeper}/fd/0`), fs.realpathSync(file));
  assert.match(fs.readlinkSync(`/proc/self/fd/${fd}`), /^socket:/);
  assert.is(othersLock(file), false, 'another process is refused the lock');
  assert.is(othersLock(file, true), false, 'and a shared one');
  assert.equal(await verifyLock(lock, file), { held: true });
  await released(lock);
  await until('the keeper to end at the socket close', () => !alive(keeper!), 5000);
  assert.is(othersLock(file), true, 'granted after the release');
}));

test('refused while another host holds it: busy, and no keeper left behind', () => withTempDir(async (dir) => {
  const file = image(dir);
  const other = await keeperLock(file, true);
  const fd = fs.openSync(file, 'r+');
  const before = keepers();
  const r = await lockImage(fd, file, true, 'refuse', OPENAFS_MAGIC);
  fs.closeSync(fd);
  assert.is(r.ok, false);
  if (!r.ok) {
    assert.is(r.busy, true);
    assert.match(r.message, /in use by another host/);
  }
  await until(`the refused keeper to end (living: ${keepers().join(' ')}; before: ${before.join(' ')})`,
    () => keepers().length === before.length, 5000);
  await released(other);
}));

test('shared locks: many readers, no writer; the writer after the last reader', () => withTempDir(async (dir) => {
  const file = image(dir);
  const a = await keeperLock(file, false);
  const b = await keeperLock(file, false);
  assert.is(a.status().mode, 'shared');
  assert.is(othersLock(file, true), true, 'another reader');
  assert.is(othersLock(file), false, 'no writer');
  await released(a);
  assert.is(othersLock(file), false, 'no writer while one reader is left');
  await released(b);
  await until('the writer to get it', () => othersLock(file), 5000);
}));

test('adopted: the socket taken from the holder keeps the lock; the last copy ends it',
  () => withTempDir(async (dir) => {
  const file = image(dir);
  const lock = await keeperLock(file, true);
  const { fd, keeper } = lock.status();
  const st = fs.statSync(file);
  const wrong = await adoptLock({ pid: process.pid, pidStart: undefined, fd: fd!, keeper: keeper! + 100_000 },
    { dev: st.dev, ino: st.ino, fsMagic: OPENAFS_MAGIC }, true);
  assert.type(wrong, 'string', 'a socket that reaches another keeper is refused');
  assert.match(String(wrong), /not its lock keeper/);
  const adopted = await adoptLock({ pid: process.pid, pidStart: undefined, fd: fd!, keeper: keeper! },
    { dev: st.dev, ino: st.ino, fsMagic: OPENAFS_MAGIC }, true);
  if (typeof adopted === 'string') throw new Error(adopted);
  assert.is(adopted.status().state, 'adopted');
  assert.is(adopted.status().keeper, keeper);
  assert.is.not(adopted.status().fd, fd);
  await released(lock); // the predecessor ends
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(alive(keeper!), 'the keeper lives on for the adopted copy');
  assert.is(othersLock(file), false);
  await released(adopted);
  await until('the keeper to end', () => !alive(keeper!), 5000);
  assert.is(othersLock(file), true);
}));

test('a keeper killed is a lock lost, and SIGTERM ends a keeper', () => withTempDir(async (dir) => {
  const file = image(dir);
  const lock = await keeperLock(file, true);
  const keeper = lock.status().keeper!;
  process.kill(keeper, 'SIGTERM');
  await until('the keeper to end at SIGTERM', () => !alive(keeper), 5000);
  const check = await verifyLock(lock, file);
  assert.is(check.held, false);
  if (!check.held) assert.match(check.message, new RegExp(`keeper \\(process ${keeper}\\) is gone`));
  assert.is(othersLock(file), true);
  await released(lock);
}));

test('a keeper that cannot start (execveat refused): the attach is refused, saying why; check says so',
  () => withTempDir((dir) => {
    const file = image(dir);
    const script = `
      const fs = require('node:fs');
      const { lockImage } = require(${JSON.stringify(path.join(repoRoot, 'build/src/image/lock.js'))});
      const fd = fs.openSync(${JSON.stringify(file)}, 'r+');
      lockImage(fd, ${JSON.stringify(file)}, true, 'refuse', ${OPENAFS_MAGIC})
        .then((r) => console.log(JSON.stringify(r)));`;
    const r = spawnSync(noExecveatWrapper(), [process.execPath, '-e', script], { encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { ok: boolean; busy: boolean; message: string };
    assert.equal([out.ok, out.busy], [false, false]);
    assert.match(out.message, `${file}: cannot start the lock keeper (execveat: EPERM)`);
    assert.is(othersLock(file), true, 'nothing holds the image');

    const exe = path.join(repoRoot, 'dist/afsfile');
    // Its temp files in a directory of this test's (os.tmpdir follows TMPDIR): it must leave none.
    const tmp = path.join(dir, 'tmp');
    fs.mkdirSync(tmp);
    const finding = (cmd: string[]) => checkFinding(cmd, dir, 'lock keeper', { TMPDIR: tmp });
    const refused = finding([noExecveatWrapper(), exe]);
    assert.match(refused?.detail ?? '', 'cannot start (execveat: EPERM)');
    // Without the OpenAFS client here, only a remark (no image needs a keeper).
    if (!fs.existsSync('/proc/fs/openafs')) assert.is(refused?.ok, true);
    assert.match(finding([exe])?.detail ?? '', /^starts \(\d+ kB\)/);
    assert.equal(fs.readdirSync(tmp), [], 'check leaves no temp dir');
  }));

/** The living keepers on this machine now (by name; counted, never signalled). */
function keepers(): string[] {
  return fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'afsfile-lock' && alive(Number(p));
    } catch {
      return false;
    }
  });
}

test.run();
