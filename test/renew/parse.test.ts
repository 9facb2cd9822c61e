// What renew reads back from klist, klist -k, tokens and kinit's error messages.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { classifyKinitError, parseKeytabFirstPrincipal, parseKlistCache, parseKlistTime, parseTokens } from '../../src/renew/klist';
import { aklogCommands, chooseClient, missingKafsTokens, missingOpenAfsTokens, parseRxrpcKeys } from '../../src/renew/aklog';
import { describeFailure } from '../../src/renew/tools';

// Verbatim from MIT klist 1.20 (Debian 12) with LC_ALL=C TZ=UTC.
const KLIST = `Ticket cache: FILE:/tmp/afsfile-kdc-mJTuZ4/cc
Default principal: host/renew@TEST.LOCAL

Valid starting     Expires            Service principal
11/25/26 17:43:50  11/25/26 17:44:02  krbtgt/TEST.LOCAL@TEST.LOCAL
\trenew until 11/25/26 17:48:50
11/25/26 17:43:51  11/25/26 17:43:59  afs/test.local@TEST.LOCAL
`;

test('klist -c: the TGT expiry, not an earlier service ticket', () => {
  const info = parseKlistCache(KLIST);
  assert.is(info.principal, 'host/renew@TEST.LOCAL');
  assert.is(info.expiresMs, Date.UTC(2026, 10, 25, 17, 44, 2));
  assert.is(info.renewUntilMs, Date.UTC(2026, 10, 25, 17, 48, 50));
});

test('klist -c: no TGT → the earliest ticket; nothing readable → undefined', () => {
  const noTgt = KLIST.replace('krbtgt/TEST.LOCAL@TEST.LOCAL', 'host/x@TEST.LOCAL');
  assert.is(parseKlistCache(noTgt).expiresMs, Date.UTC(2026, 10, 25, 17, 43, 59));
  assert.is(parseKlistCache('klist: No credentials cache found (filename: /x)\n').expiresMs, undefined);
  assert.is(parseKlistCache(KLIST.replace(/11\/25\/26 17:44:02/, '25.11.2026 17:44')).expiresMs, Date.UTC(2026, 10, 25, 17, 43, 59), 'an unknown format is skipped, not guessed');
});

test('klist timestamps: the formats MIT falls back to, and nonsense refused', () => {
  assert.is(parseKlistTime('11/25/2026 17:44:02'), Date.UTC(2026, 10, 25, 17, 44, 2));
  assert.is(parseKlistTime('25 Nov 2026 17:44:02'), Date.UTC(2026, 10, 25, 17, 44, 2));
  assert.is(parseKlistTime('2026-11-25T17:44:02'), Date.UTC(2026, 10, 25, 17, 44, 2));
  assert.is(parseKlistTime('02/31/26 10:00:00'), undefined);
  assert.is(parseKlistTime('13/01/26 10:00:00'), undefined);
  assert.is(parseKlistTime(''), undefined);
});

test('klist -k: the first entry is the default principal (k5start -U)', () => {
  const out = `Keytab name: FILE:/tmp/k/test.keytab
KVNO Principal
---- --------------------------------------------------------------------------
   2 host/renew@TEST.LOCAL
   2 host/renew@TEST.LOCAL
   3 other/x@TEST.LOCAL
`;
  assert.is(parseKeytabFirstPrincipal(out), 'host/renew@TEST.LOCAL');
  assert.is(parseKeytabFirstPrincipal('Keytab name: FILE:/x\nKVNO Principal\n---- ----\n'), undefined);
  const withTimes = `Keytab name: FILE:/k
KVNO Timestamp         Principal
---- ----------------- --------------------------------------------------------
   2 11/25/26 17:43:50 host/a@TEST.LOCAL
`;
  assert.is(parseKeytabFirstPrincipal(withTimes), 'host/a@TEST.LOCAL');
});

test('tokens: expiry per cell, the year chosen nearest to now, expired tokens marked', () => {
  const out = `
Tokens held by the Cache Manager:

User's (AFS ID 1000) rxkad tokens for example.org [Expires Jan  2 03:30]
User's (AFS ID 1000) rxkad tokens for other.org [>> Expired <<]
   --End of list--
`;
  const now = Date.UTC(2026, 11, 31, 20, 0, 0);
  const t = parseTokens(out, now);
  assert.is(t.get('example.org'), Date.UTC(2027, 0, 2, 3, 30));
  assert.is(t.get('other.org'), 'expired');
  assert.is(parseTokens('Tokens held by the Cache Manager:\n\n   --End of list--\n', now).size, 0);
});

test('kinit errors: permanent (administrator) versus transient (retry soon)', () => {
  const perm = [
    "kinit: Keytab contains no suitable keys for nobody@TEST.LOCAL while getting initial credentials",
    "kinit: Client 'gone/renew@TEST.LOCAL' not found in Kerberos database while getting initial credentials",
    "kinit: Key table file '/etc/x.keytab' not found while getting initial credentials",
    'kinit: Preauthentication failed while getting initial credentials',
  ];
  const trans = [
    "kinit: Cannot contact any KDC for realm 'TEST.LOCAL' while getting initial credentials",
    'kinit: Clock skew too great while getting initial credentials',
    'kinit: something new',
  ];
  for (const m of perm) assert.is(classifyKinitError(m), 'permanent', m);
  for (const m of trans) assert.is(classifyKinitError(m), 'transient', m);
});

test('aklog command: split on blanks; -c CELL for OpenAFS aklog, the cell positional for aklog-kafs; auto is the client\'s own; empty refused', () => {
  assert.equal(aklogCommands('aklog', []), [['aklog']]);
  assert.equal(aklogCommands(' /usr/bin/aklog  -d ', ['a.org', 'b.org']), [['/usr/bin/aklog', '-d', '-c', 'a.org'], ['/usr/bin/aklog', '-d', '-c', 'b.org']]);
  assert.equal(aklogCommands('aklog-kafs', ['a.org', 'b.org'], 'kafs'), [['aklog-kafs', 'a.org'], ['aklog-kafs', 'b.org']]);
  assert.equal(aklogCommands('auto', ['a.org'], 'kafs'), [['aklog-kafs', 'a.org']]);
  assert.equal(aklogCommands('auto', ['a.org'], 'openafs'), [['aklog', '-c', 'a.org']]);
  assert.equal(aklogCommands('auto', [], 'kafs'), [['aklog-kafs']]);
  assert.throws(() => aklogCommands('  ', []), /empty/);
});

test('which client: the setting, else the loaded module, else the aklog\'s name', () => {
  const none = { openafs: false, kafs: false };
  assert.is(chooseClient('kafs', 'aklog', { openafs: true, kafs: false }), 'kafs');
  assert.is(chooseClient('openafs', 'aklog-kafs', none), 'openafs');
  assert.is(chooseClient('auto', 'aklog-kafs', { openafs: true, kafs: false }), 'openafs');
  assert.is(chooseClient('auto', 'aklog', { openafs: false, kafs: true }), 'kafs');
  assert.is(chooseClient('auto', '/usr/bin/aklog-kafs', none), 'kafs');
  assert.is(chooseClient('auto', '/usr/local/sbin/site-kafs-aklog -v', none), 'kafs');
  assert.is(chooseClient('auto', 'auto', none), 'openafs');
  assert.is(chooseClient('auto', '/opt/kafs/bin/aklog', none), 'openafs', 'the program\'s name counts, not its directory');
});

test('kAFS tokens: rxrpc afs@CELL keys of keyctl show; only a key new since before aklog counts', () => {
  const before = parseRxrpcKeys([
    'Session Keyring',
    ' 725818473 --alswrv      0     0  keyring: _ses',
    ' 110264581 --als-rv      0     0   \\_ rxrpc: afs@Test.Local',
    ' 120000000 --alswrv      0     0   \\_ user: afs@other.org',
  ].join('\n'));
  assert.equal([...before], [[110264581, 'test.local']], 'the user key of the same name is not a token');
  const after = parseRxrpcKeys(' 725818473 --alswrv      0     0  keyring: _ses\n 110264581 --als-rv      0     0   \\_ rxrpc: afs@test.local\n 330000001 --als-rv      0     0   \\_ rxrpc: afs@b.org\n');
  assert.equal(missingKafsTokens(['test.local'], before, before), ['test.local'], 'the old key (aklog made none) is not a token of this attempt');
  assert.equal(missingKafsTokens(['test.local', 'b.org'], before, after), ['test.local']);
  assert.equal(missingKafsTokens(['B.org'], before, after), []);
  assert.equal(missingKafsTokens([], before, after), []);
  assert.equal(missingKafsTokens([], before, before).length, 1);
});

test('OpenAFS tokens: a cell counts only with an unexpired token', () => {
  const now = Date.parse('2026-12-04T23:00:00Z');
  const found = parseTokens([
    "User's (AFS ID 1000) rxkad tokens for a.org [Expires Dec 05 09:00]",
    "User's (AFS ID 1000) rxkad tokens for b.org [>> Expired <<]",
  ].join('\n'), now);
  assert.equal(missingOpenAfsTokens(['a.org', 'b.org', 'c.org'], found, now), ['b.org', 'c.org']);
  assert.equal(missingOpenAfsTokens([], found, now), []);
  assert.equal(missingOpenAfsTokens([], new Map(), now).length, 1);
});

test('failure lines name the tool, how it ended and its last words', () => {
  assert.is(describeFailure('aklog', { code: 3, signal: undefined, stdout: '', stderr: 'aklog: no cell\n', failure: undefined }), 'aklog failed (exit status 3): aklog: no cell');
  assert.is(describeFailure('kinit', { code: undefined, signal: 'SIGKILL', stdout: '', stderr: '', failure: 'timed out after 30 s' }), 'kinit failed (timed out after 30 s)');
});

test.run();
