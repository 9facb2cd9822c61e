// The token gate (src/worker/token-gate.ts): writes to an AFS image stop shortly before its token
// lapses, fsync a little later; EKEYEXPIRED instead (held by the engine), and the real calls
// again as soon as renew has new tokens. The image is a real file (Image); only "is it on AFS" is forced, since
// no AFS is mounted here (the Xen AFS stages run it on kAFS).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withTicketExpiry } from '../../src/renew/aklog';
import { type RenewStatusFields, readRenewStatus, writeRenewStatus } from '../../src/renew/status';
import { Image } from '../../src/image/image';
import {
  FSYNC_MARGIN_MS, WRITE_MARGIN_MS, WRITE_MARGIN_ENV, expiredToken, gateStores, onAfs, renewTokenCheck, tokenMargins,
} from '../../src/worker/token-gate';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'afsfile-gate-'));
const NOW = Date.parse('2026-01-01T12:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

function renew(fields: Partial<RenewStatusFields>): void {
  writeRenewStatus(dir, {
    managed: true, state: 'running', pag: 'keyctl', principal: 'afsfile/dom0@T', cells: ['t.cell'],
    ticketExpires: iso(NOW + 3600_000), tokenExpires: { 't.cell': iso(NOW + 3600_000) }, renewals: 1,
    lastAttempt: null, lastSuccess: null, lastError: null, failures: 0, nextAttempt: null, childPid: null, ...fields,
  });
}

test('expiredToken: valid, within the margin, expired, "expired", kAFS "present" by the ticket', () => {
  renew({});
  assert.is(expiredToken(readRenewStatus(dir), NOW), undefined);
  renew({ tokenExpires: { 't.cell': iso(NOW + FSYNC_MARGIN_MS - 1) } });
  assert.match(expiredToken(readRenewStatus(dir), NOW) ?? '', /t\.cell expires at/);
  renew({ tokenExpires: { 't.cell': iso(NOW - 1) } });
  assert.match(expiredToken(readRenewStatus(dir), NOW) ?? '', /t\.cell expired at/);
  renew({ tokenExpires: { 't.cell': 'expired' } });
  assert.match(expiredToken(readRenewStatus(dir), NOW) ?? '', /has expired/);
  renew({ tokenExpires: { 't.cell': 'present' }, ticketExpires: iso(NOW - 5) });
  assert.match(expiredToken(readRenewStatus(dir), NOW) ?? '', /expired at/, 'kAFS key: the ticket expiry counts');
  renew({ tokenExpires: { 't.cell': 'present' }, ticketExpires: null });
  assert.is(expiredToken(readRenewStatus(dir), NOW), undefined, 'unknown expiry: not gated');
  renew({ managed: false, tokenExpires: { 't.cell': 'expired' } });
  assert.is(expiredToken(readRenewStatus(dir), NOW), undefined, 'renew without keytab: not gated');
  assert.is(expiredToken({ kind: 'absent' }, NOW), undefined, 'no renew: not gated');
});

test('withTicketExpiry: kAFS "present" becomes the ticket expiry; OpenAFS values stay', () => {
  assert.equal(withTicketExpiry({ a: 'present', b: iso(NOW), c: 'expired' }, NOW + 60_000),
    { a: iso(NOW + 60_000), b: iso(NOW), c: 'expired' });
  assert.equal(withTicketExpiry({ a: 'present' }, undefined), { a: 'present' });
});

test('gateStores on AFS: writes stop first, then fsync; renewed, the real calls again', async () => {
  const file = path.join(dir, 'img');
  fs.writeFileSync(file, Buffer.alloc(1 << 20));
  let clock = Date.now();
  const check = renewTokenCheck(dir, () => clock);
  const img = gateStores(Image.open(file, { readOnly: false, direct: false }), check, () => true);
  const fsync = () => new Promise<NodeJS.ErrnoException | null>((r) => img.fsync(r));
  const write = (b: number) =>
    new Promise<NodeJS.ErrnoException | null>((r) => img.write(new Uint8Array(4096).fill(b), 0, r));
  try {
    const exp = clock + 60_000;
    renew({ tokenExpires: { 't.cell': iso(exp) } });
    assert.is(await write(1), null, 'a minute left: writes pass');
    clock = exp - WRITE_MARGIN_MS + 1000; // (renew.json is read again only after a second)
    const werr = await write(2);
    assert.is(werr?.code, 'EKEYEXPIRED', 'within the write margin: writes held');
    assert.match(werr?.message ?? '', /write not attempted: the AFS token for t\.cell expires at/);
    assert.is(await fsync(), null, 'but fsync still stores what is dirty');
    assert.is(fs.readFileSync(file)[0], 1, 'the refused write did not reach the file');
    clock = exp - FSYNC_MARGIN_MS + 1000;
    const ferr = await fsync();
    assert.is(ferr?.code, 'EKEYEXPIRED', 'within the fsync margin: fsync not attempted');
    assert.match(ferr?.message ?? '', /fsync not attempted/);
    renew({ tokenExpires: { 't.cell': iso(clock + 3600_000) } });
    clock += 1100;
    assert.is(await write(3), null, 'renewed: writes again');
    assert.is(await fsync(), null, 'renewed: the real fsync');
    assert.is(fs.readFileSync(file)[0], 3);
  } finally {
    img.close();
  }
});

test('tokenMargins: AFSFILE_TOKEN_WRITE_MARGIN in seconds, never below the fsync margin', async () => {
  const def = { writeMs: WRITE_MARGIN_MS, fsyncMs: FSYNC_MARGIN_MS };
  assert.equal(tokenMargins({}), def);
  assert.equal(tokenMargins({ [WRITE_MARGIN_ENV]: '10' }), { writeMs: 10_000, fsyncMs: FSYNC_MARGIN_MS });
  assert.equal(tokenMargins({ [WRITE_MARGIN_ENV]: '120' }), { writeMs: 120_000, fsyncMs: FSYNC_MARGIN_MS });
  for (const bad of ['5', '0', '-20', '1e3', '20s', '', '99999', ' 20'])
    assert.equal(tokenMargins({ [WRITE_MARGIN_ENV]: bad }), def, `"${bad}" keeps the default`);
  // With a 10 s write margin, a write 20 s before expiry passes (it would be held by default).
  let clock = Date.now();
  const exp = clock + 20_000;
  renew({ tokenExpires: { 't.cell': iso(exp) } });
  assert.is(renewTokenCheck(dir, () => clock)('write')?.includes('expires at'), true, 'default: held');
  const check = renewTokenCheck(dir, () => clock, undefined, tokenMargins({ [WRITE_MARGIN_ENV]: '10' }));
  assert.is(check('write'), undefined, '10 s margin: 20 s before expiry the write passes');
  clock = exp - 9000;
  await new Promise((r) => setTimeout(r, 0));
  assert.is(renewTokenCheck(dir, () => clock, undefined, tokenMargins({ [WRITE_MARGIN_ENV]: '10' }))('write')
    ?.includes('expires at'), true, 'inside it: held');
});

test('gateStores: not on AFS (this tmp dir) or read-only: the fsync is the image\'s own', () => {
  const file = path.join(dir, 'img2');
  fs.writeFileSync(file, Buffer.alloc(4096));
  assert.is(onAfs(file), false);
  const img = Image.open(file, { readOnly: false, direct: false });
  const own = img.fsync;
  const ownWrite = img.write;
  const gated = gateStores(img, () => 'expired');
  assert.is(gated.fsync, own);
  assert.is(gated.write, ownWrite);
  img.close();
  const ro = Image.open(file, { readOnly: true, direct: false });
  const ownRo = ro.fsync;
  assert.is(gateStores(ro, () => 'expired', () => true).fsync, ownRo);
  ro.close();
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
test.run();
