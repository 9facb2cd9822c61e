// status/renew.json: atomic writes, the reader other commands call, and no secrets in it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type RenewStatusFields, describeRenewStatus, readRenewStatus, renewStatusPath, writeRenewStatus } from '../../src/renew/status';
import { withTempDir } from '../helpers/temp';

const fields: RenewStatusFields = {
  managed: true, state: 'running', pag: 'keyctl', principal: 'host/x@TEST.LOCAL', cells: ['test.local'],
  ticketExpires: '2099-01-01T00:00:00.000Z', tokenExpires: null, renewals: 0, lastAttempt: null, lastSuccess: null,
  lastError: { time: '2026-01-01T00:00:00.000Z', message: 'kinit failed', permanent: false }, failures: 2,
  nextAttempt: '2099-01-01T00:00:00.000Z', childPid: 1,
};

test('write then read: this process is alive, fields round-trip, no temp file left', () => {
  withTempDir((dir) => {
    writeRenewStatus(dir, fields);
    const r = readRenewStatus(dir);
    assert.is(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    assert.ok(r.alive);
    assert.is(r.status.pid, process.pid);
    assert.is(r.status.principal, 'host/x@TEST.LOCAL');
    assert.equal(fs.readdirSync(path.dirname(renewStatusPath(dir))), ['renew.json']);
    assert.match(describeRenewStatus(r, Date.UTC(2026, 0, 1)), /failing \(2x\): kinit failed/);
  });
});

test('reader: absent, garbage and a dead pid are told apart, never thrown', () => {
  withTempDir((dir) => {
    assert.is(readRenewStatus(dir).kind, 'absent');
    fs.mkdirSync(path.join(dir, 'status'));
    fs.writeFileSync(renewStatusPath(dir), '{"pid": 1, "man');
    assert.is(readRenewStatus(dir).kind, 'unreadable');
    fs.writeFileSync(renewStatusPath(dir), '[]');
    assert.is(readRenewStatus(dir).kind, 'unreadable');
    fs.writeFileSync(renewStatusPath(dir), JSON.stringify({ ...fields, version: 'x', pid: 2 ** 22 + 12345, updated: 'u' }));
    const r = readRenewStatus(dir);
    assert.ok(r.kind === 'ok' && !r.alive);
    assert.match(describeRenewStatus(r), /not running/);
  });
});

test.run();
