// The token gate (src/worker/token-gate.ts): no fsync of an AFS image once renew.json says its
// token expired; EKEYEXPIRED instead (held by the engine), and the real fsync again as soon as
// renew has new tokens. The image is a real file (Image); only "is it on AFS" is forced, since
// no AFS is mounted here (the Xen AFS stages run it on kAFS).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withTicketExpiry } from '../../src/renew/aklog';
import { type RenewStatusFields, readRenewStatus, writeRenewStatus } from '../../src/renew/status';
import { Image } from '../../src/image/image';
import { GATE_MARGIN_MS, expiredToken, gateFsync, onAfs, renewTokenCheck } from '../../src/worker/token-gate';

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
  renew({ tokenExpires: { 't.cell': iso(NOW + GATE_MARGIN_MS - 1) } });
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

test('gateFsync on AFS: an expired token answers EKEYEXPIRED without fsync; renewed, the real one', async () => {
  const file = path.join(dir, 'img');
  fs.writeFileSync(file, Buffer.alloc(1 << 20));
  const check = renewTokenCheck(dir, () => Date.now() + 10_000_000);
  const img = gateFsync(Image.open(file, { readOnly: false, direct: false }), check, () => true);
  const fsync = () => new Promise<NodeJS.ErrnoException | null>((r) => img.fsync(r));
  try {
    renew({ tokenExpires: { 't.cell': iso(Date.now() + 1000) } });
    const err = await fsync();
    assert.is(err?.code, 'EKEYEXPIRED');
    assert.match(err?.message ?? '', /fsync not attempted: the AFS token for t\.cell expire/);
    // renew.json is read at most once a second: a renewal is seen after that.
    renew({ tokenExpires: { 't.cell': iso(Date.now() + 100_000_000) } });
    await new Promise((r) => setTimeout(r, 1100));
    assert.is(await fsync(), null, 'renewed: the real fsync');
  } finally {
    img.close();
  }
});

test('gateFsync: not on AFS (this tmp dir) or read-only: the fsync is the image\'s own', () => {
  const file = path.join(dir, 'img2');
  fs.writeFileSync(file, Buffer.alloc(4096));
  assert.is(onAfs(file), false);
  const img = Image.open(file, { readOnly: false, direct: false });
  const own = img.fsync;
  assert.is(gateFsync(img, () => 'expired').fsync, own);
  img.close();
  const ro = Image.open(file, { readOnly: true, direct: false });
  const ownRo = ro.fsync;
  assert.is(gateFsync(ro, () => 'expired', () => true).fsync, ownRo);
  ro.close();
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
test.run();
