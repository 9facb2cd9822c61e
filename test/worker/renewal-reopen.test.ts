// After a renewal the image is opened again before anything more is stored (key-epoch.ts), and
// what was kept since the last good fsync is written again through the new open file
// (Engine.refresh). KeyedFile is kAFS's write-back with keys as Linux 6.12 did it in the Xen
// AFS expiry case (a store with no valid key: pages clean, nothing stored, fsync 0); each test
// also runs the old order once, to show the double loses the data there.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlkifOp } from '../../src/blkif/constants';
import { type RenewStatusFields, writeRenewStatus } from '../../src/renew/status';
import type { DeviceImage } from '../../src/worker/device';
import { KeyEpoch } from '../../src/worker/key-epoch';
import { RenewWatch, gateStores } from '../../src/worker/token-gate';
import { Rig, pattern, rwReq, tick } from '../engine/fixture';
import { KeyedFile } from '../engine/keyed-file';

const { WRITE, FLUSH_DISKCACHE } = BlkifOp;
const SIZE = 1 << 20;
const iso = (ms: number) => new Date(ms).toISOString();
const dirs: string[] = [];

function runDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'afsfile-renewal-'));
  dirs.push(d);
  return d;
}

function renew(dir: string, renewals: number, expires: number): void {
  const f: RenewStatusFields = {
    managed: true, state: 'running', pag: 'keyctl', principal: 'afsfile/dom0@T', cells: ['t.cell'],
    ticketExpires: iso(expires), tokenExpires: { 't.cell': iso(expires) }, renewals,
    lastAttempt: null, lastSuccess: null, lastError: null, failures: 0, nextAttempt: null, childPid: null,
  };
  writeRenewStatus(dir, f);
}

function submitWrite(rig: Rig, page: number, seed: number): void {
  rig.submit(rwReq(WRITE, rig.id(), BigInt(page * 8), [rig.grants.grant(pattern(seed))]));
}

async function answered(rig: Rig, n: number, timeoutMs = 8000): Promise<number[]> {
  const rs = await rig.collect(n, timeoutMs);
  return rs.map((r) => r.status);
}

/**
 * Case 2 of the Xen AFS stages, on the double: a write, FLUSH; the token lapses while a write
 * waits at the gate; renew gets new tokens; the write goes on, FLUSH. `withEpoch` false is the
 * old order (the image reopened only by the worker's later timer, not before the write).
 */
async function expiryCase(withEpoch: boolean): Promise<{ file: KeyedFile; statuses: number[]; warnings: string[] }> {
  const dir = runDir();
  let clock = Date.parse('2026-01-01T12:00:00Z');
  const expires = clock + 3600_000;
  renew(dir, 1, expires);
  const file = new KeyedFile(SIZE);
  const watch = new RenewWatch(dir, () => clock);
  const warnings: string[] = [];
  let rig: Rig | undefined;
  const epoch = new KeyEpoch(watch, {
    reopen: (cb) => (rig ? (rig.engine.refresh(cb), true) : false),
    note: (m) => warnings.push(m),
  });
  const img = gateStores(file as unknown as DeviceImage, watch.check(), () => true, withEpoch ? epoch : undefined);
  rig = new Rig(img, { engine: { holdTimeoutMs: 20_000, warn: (m) => warnings.push(m) } });
  epoch.start();
  submitWrite(rig, 0, 1);
  rig.submit(rwReq(FLUSH_DISKCACHE, rig.id(), 0n, []));
  assert.equal(await answered(rig, 2), [0, 0]);
  // The token lapses: the gate holds the next write (EKEYEXPIRED, retried by the engine).
  clock = expires + 1000;
  renew(dir, 1, expires);
  file.lapsed.add(1);
  submitWrite(rig, 1, 2);
  await tick(300);
  assert.is(rig.responses.length, 2, 'the write is held while the token is expired');
  // renew gets new tokens: a new key for new opens, renewal 2, a new expiry.
  file.latestKey = 2;
  renew(dir, 2, clock + 3600_000);
  clock += 1100; // the gate reads renew.json again
  const statuses = await answered(rig, 3);
  rig.submit(rwReq(FLUSH_DISKCACHE, rig.id(), 0n, []));
  statuses.push(...(await answered(rig, 4)).slice(3));
  rig.engine.close();
  return { file, statuses, warnings };
}

test('token lapsed, then renewed: the held write is stored with the new key, not dropped', async () => {
  const { file, statuses, warnings } = await expiryCase(true);
  assert.equal(statuses, [0, 0, 0, 0], 'no error seen by the guest');
  assert.equal(file.storedPage(0), pattern(1));
  assert.equal(file.storedPage(1), pattern(2), 'the write held over the expiry is on the server');
  assert.is(file.droppedPages, 0, warnings.join('\n'));
  assert.ok(file.reopens >= 1, 'reopened before the write went on');
  const said = /tokens renewed \(renewal 2, renew pid \d+\): image reopened/;
  assert.ok(warnings.some((w) => said.test(w)), warnings.join('\n'));
});

test('the double loses that write in the old order (write through the old open file, then fsync)', async () => {
  const { file, statuses } = await expiryCase(false);
  assert.equal(statuses, [0, 0, 0, 0], 'the guest was told it is stored');
  assert.is(file.droppedPages, 1, 'and the store had no valid key');
  assert.not.equal(file.storedPage(1), pattern(2));
});

test('refresh writes the kept data again: a store the kernel dropped silently is repaired', async () => {
  for (const refresh of [true, false]) {
    const file = new KeyedFile(SIZE);
    const warnings: string[] = [];
    const rig = new Rig(file, { engine: { holdTimeoutMs: 5000, warn: (m) => warnings.push(m) } });
    submitWrite(rig, 3, 7);
    assert.equal(await answered(rig, 1), [0]);
    // The key lapses with the write still dirty; the flusher stores it with no key: dropped.
    file.lapsed.add(1);
    file.writeback();
    assert.is(file.droppedPages, 1);
    file.latestKey = 2;
    if (refresh) {
      const err = await new Promise<NodeJS.ErrnoException | null>((r) => rig.engine.refresh(r));
      assert.is(err, null);
    } else {
      await new Promise((r) => file.reopen(r)); // the reopen of before: no writing again
    }
    rig.submit(rwReq(FLUSH_DISKCACHE, rig.id(), 0n, []));
    assert.equal(await answered(rig, 2), [0, 0]);
    if (refresh) {
      assert.equal(file.storedPage(3), pattern(7), 'written again from the kept copy, stored with the new key');
      assert.equal(file.storedWith, [2]);
      const said = /reopened for new tokens: wrote 1 kept write\(s\) \(4096 bytes\) again/;
      assert.ok(warnings.some((w) => said.test(w)), warnings.join('\n'));
    } else {
      assert.not.equal(file.storedPage(3), pattern(7), 'without it the FLUSH was answered over a lost write');
    }
    assert.is(rig.engine.stats().keptBytes, 0, 'released after the good fsync');
    rig.engine.close();
  }
});

test('KeyEpoch: stale after a renewal until reopened; reopens once at a time; nothing to reopen', async () => {
  const dir = runDir();
  let clock = Date.now();
  renew(dir, 1, clock + 3600_000);
  const watch = new RenewWatch(dir, () => clock);
  const calls: Array<(err: NodeJS.ErrnoException | null) => void> = [];
  let reopenable = true;
  const notes: string[] = [];
  const epoch = new KeyEpoch(watch, {
    reopen: (cb) => (reopenable ? (calls.push(cb), true) : false),
    note: (m) => notes.push(m),
  });
  assert.is(epoch.check(), undefined);
  renew(dir, 2, clock + 3600_000);
  clock += 1100;
  assert.match(epoch.check() ?? '', /not yet open again with the tokens of renewal 2/);
  // Through the gate: EAGAIN, not a key error (which would ask renew for yet another renewal).
  const file = new KeyedFile(SIZE);
  const img = gateStores(file as unknown as DeviceImage, () => undefined, () => true, epoch);
  const err = await new Promise<NodeJS.ErrnoException | null>((r) => img.write(new Uint8Array(4096), 0, r));
  assert.is(err?.code, 'EAGAIN');
  assert.match(err?.message ?? '', /write not attempted: the image is not yet open again/);
  await tick(5);
  assert.is(calls.length, 0, 'no reopen before start (the image is not served yet)');
  epoch.start();
  epoch.poke();
  assert.is(calls.length, 1, 'one reopen at a time');
  calls[0](Object.assign(new Error('expired'), { code: 'EKEYEXPIRED' }));
  assert.is(epoch.stale, true, 'a failed reopen does not count as one');
  assert.match(notes.join('\n'), /reopening the image failed: EKEYEXPIRED; writes held/);
  epoch.opened(epoch.before());
  assert.is(epoch.check(), undefined, 'reopened: stores go on');
  renew(dir, 3, clock + 3600_000);
  clock += 1100;
  reopenable = false;
  epoch.poke();
  assert.is(epoch.stale, false, 'nothing to reopen (not on AFS): not held');
});

test.after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
test.run();
