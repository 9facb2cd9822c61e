// dist/afsfile renew when things go wrong: KDC down at start and mid-run (backoff, recovery, no
// tight loop), a missing keytab, unknown principals, the real Debian aklog failing, and pagsh
// without the OpenAFS kernel module.
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { test } from 'uvu';
import { setup, teardown } from '../helpers/hooks';
import * as assert from 'uvu/assert';
import { EXE } from '../helpers/exe';
import { KEYTAB_ARGS, type Rig, makeRig, startRenew } from './rig';
import { until } from '../helpers/wait';

let rig: Rig;

setup(test, async () => {
  rig = await makeRig();
  rig.kdc.addPrincipal('gone/renew', rig.file('gone.keytab'));
  rig.kdc.kadmin('delprinc -force gone/renew');
  rig.kdc.kadmin('addprinc -randkey afs/test.local');
});
teardown(test, async () => {
  await rig?.cleanup();
});
test.before.each(async () => {
  for (const f of ['aklog.log', 'kinit.log', 'aklog.exit', 'aklog.notoken', 'aklog-kafs.log', 'tokens.txt']) fs.rmSync(rig.file(f), { force: true });
  await rig.kdc.stop();
});

type Status = { failures: number; lastError: { message: string; permanent: boolean } | null; lastSuccess: string | null; nextAttempt: string | null; ticketExpires: string | null };

test('KDC down at start: the child runs at once; kinit backs off (no tight loop); tokens arrive once the KDC is up', async () => {
  const r = startRenew(rig, [...KEYTAB_ARGS(rig), '--lifetime=60s', '--retry-cap=2s']);
  try {
    const t0 = Date.now();
    await r.childInfo();
    assert.ok(Date.now() - t0 < 3000, 'the child does not wait for tickets');
    await sleep(4000);
    const tries = rig.lines('kinit.log').length;
    // At once, then after 1 s, then 1-2 s apart (cap 2 s, equal jitter): 3 to 5 in 4 s, never dozens.
    assert.ok(tries >= 3 && tries <= 6, `${tries} kinit runs in 4 s\n${r.stderr()}`);
    const s = r.status() as unknown as Status;
    assert.ok(s.failures >= 3);
    assert.match(s.lastError!.message, /Cannot contact any KDC/);
    assert.is(s.lastError!.permanent, false);
    assert.is(s.lastSuccess, null);
    assert.is(rig.lines('aklog.log').length, 0);
    assert.match(r.stderr(), /kinit failed .*Cannot contact any KDC.*retrying in \d+ s/);
    await rig.kdc.start();
    const up = Date.now();
    await until('recovery', () => (r.status() as unknown as Status).lastSuccess !== null, 5000);
    assert.ok(Date.now() - up <= 4500, 'recovered within the retry cap (plus the attempt itself)');
    assert.is((r.status() as unknown as Status).failures, 0);
    assert.is(rig.lines('aklog.log').length, 1);
    // Its stderr comes through a pipe, which may deliver the line after the status file said so.
    await until('the tickets line', () => /tickets for host\/renew@TEST\.LOCAL valid until/.test(r.stderr()), 5000);
  } finally {
    await r.kill();
  }
});

test('KDC stopped under a running renew, then restarted: renewals fail with backoff and recover', async () => {
  await rig.kdc.start();
  const r = startRenew(rig, [...KEYTAB_ARGS(rig), '--lifetime=3s', '--margin=1s', '--retry-cap=2s']);
  try {
    await until('a first ticket', () => rig.lines('aklog.log').length === 1);
    await rig.kdc.stop();
    const before = rig.lines('kinit.log').length;
    await sleep(3500);
    const failed = rig.lines('kinit.log').length - before;
    assert.ok(failed >= 2 && failed <= 5, `${failed} kinit runs in 3.5 s with the KDC down`);
    assert.ok((r.status() as unknown as Status).failures >= 2);
    const aklogs = rig.lines('aklog.log').length;
    await rig.kdc.start();
    await until('renewal after the restart', () => rig.lines('aklog.log').length > aklogs, 4000);
    await until('failures reset', () => (r.status() as unknown as Status).failures === 0, 2000);
  } finally {
    await r.kill();
  }
});

test('missing keytab: loud, permanent, retried only at the cap, never reaches kinit; the child still runs', async () => {
  const r = startRenew(rig, [`--keytab=${rig.file('no.keytab')}`, '--retry-cap=30s']);
  try {
    await r.childInfo();
    const s = await until('the error', () => { const st = r.status() as unknown as Status | undefined; return st?.lastError ? st : undefined; }, 5000);
    // The status file may say it before the pipe has brought the line.
    const line = /ERROR: keytab \S+no\.keytab does not exist; fix --keytab or the file \(needs an administrator; retrying in (1[5-9]|2\d|30) s\)/;
    await until('the error line on stderr', () => line.test(r.stderr()), 5000).catch(() => undefined);
    assert.match(r.stderr(), line);
    assert.is(s.lastError!.permanent, true);
    assert.ok(Date.parse(s.nextAttempt!) - Date.now() > 10_000, 'retried slowly');
    assert.is(rig.lines('kinit.log').length, 0);
  } finally {
    await r.kill();
  }
});

test('unknown principal, in the keytab or in the KDC: permanent errors with kinit\'s words', async () => {
  await rig.kdc.start();
  const cases = [
    { args: [...KEYTAB_ARGS(rig), '--principal=nobody@TEST.LOCAL'], said: /Keytab contains no suitable keys for nobody@TEST\.LOCAL/ },
    { args: [`--keytab=${rig.file('gone.keytab')}`], said: /Client 'gone\/renew@TEST\.LOCAL' not found in Kerberos database/ },
  ];
  for (const c of cases) {
    const r = startRenew(rig, [...c.args, '--retry-cap=30s']);
    try {
      const s = await until('the error', () => { const st = r.status() as unknown as Status | undefined; return st?.lastError ? st : undefined; }, 8000);
      assert.match(s.lastError!.message, c.said);
      assert.is(s.lastError!.permanent, true);
      assert.match(r.stderr(), /ERROR: kinit failed/);
      assert.is(rig.lines('kinit.log').length, 1);
    } finally {
      await r.kill();
    }
    fs.rmSync(rig.file('kinit.log'), { force: true });
  }
});

test('the real Debian aklog: "no such cell" (exit 3) and "pioctl failed" (exit 5) are errors, not success', async () => {
  await rig.kdc.start();
  // A private client configuration: aklog reads $AFSCONF when /etc/openafs has no ThisCell.
  const conf = rig.file('afsconf');
  fs.mkdirSync(conf, { recursive: true });
  fs.writeFileSync(`${conf}/ThisCell`, 'test.local\n');
  fs.writeFileSync(`${conf}/CellServDB`, '>test.local #test\n127.0.0.1 #localhost\n');
  const hostHasCell = fs.existsSync('/etc/openafs/ThisCell') && fs.readFileSync('/etc/openafs/ThisCell', 'utf8').trim() !== '';
  const cases = [
    { cell: 'no-such-cell.invalid', status: 3 },
    ...(hostHasCell ? [] : [{ cell: 'test.local', status: 5 }]),
  ];
  for (const c of cases) {
    const r = startRenew(rig, [...KEYTAB_ARGS(rig), `--cell=${c.cell}`, '--retry-cap=30s'], undefined, { aklog: 'aklog', env: { AFSCONF: conf } });
    try {
      const s = await until('the aklog error', () => { const st = r.status() as unknown as Status | undefined; return st?.lastError ? st : undefined; }, 8000);
      assert.is(s.lastSuccess, null, `aklog -c ${c.cell} failed, so no success`);
      assert.match(s.lastError!.message, new RegExp(`aklog -c ${c.cell.replace(/\./g, '\\.')} failed \\(exit status ${c.status}\\)`));
      assert.ok(s.ticketExpires !== null, 'the ticket itself was fine');
      assert.is(rig.lines('aklog.log').length, 0, 'the recording aklog was not used');
    } finally {
      await r.kill();
    }
  }
  assert.ok(cases.length === 2 || hostHasCell);
});

test('an aklog that exits 0 without a token is a failure: OpenAFS (tokens shows none) and kafs-client 0.5 (no new rxrpc key)', async () => {
  await rig.kdc.start();
  fs.writeFileSync(rig.file('aklog.notoken'), '');
  const r = startRenew(rig, [...KEYTAB_ARGS(rig), '--retry-cap=30s']);
  try {
    const s = await until('the missing token', () => { const st = r.status() as unknown as Status | undefined; return st?.lastError ? st : undefined; }, 8000);
    assert.is(s.lastSuccess, null, 'no token, no success');
    assert.match(s.lastError!.message, /aklog exited 0 but `tokens` shows no valid token for test\.local/);
    assert.is(s.lastError!.permanent, false);
    assert.is(rig.lines('aklog.log').length, 1);
  } finally {
    await r.kill();
  }
  fs.rmSync(rig.file('aklog.notoken'));
  // kAFS: aklog-kafs takes the cell as its argument (not -c, which it rejects and still exits
  // 0); on this host, without the rxrpc key type, it sets no key: renew must see that.
  const k = startRenew(rig, [...KEYTAB_ARGS(rig), '--retry-cap=30s', '--afs-client=kafs'], undefined, { aklog: 'aklog-kafs' });
  try {
    const s = await until('the missing kAFS token', () => { const st = k.status() as unknown as Status | undefined; return st?.lastError ? st : undefined; }, 8000);
    assert.equal(rig.lines('aklog-kafs.log').map((l) => l.slice(l.indexOf(' ') + 1)), ['args=test.local'], 'the cell is positional for aklog-kafs');
    assert.is(s.lastSuccess, null);
    assert.match(s.lastError!.message, /aklog exited 0 but the session keyring holds no new rxrpc token for test\.local/);
  } finally {
    await k.kill();
  }
});

test('renew picks the client from --aklog when no AFS module is loaded: aklog-kafs is called with the cell positionally', async () => {
  await rig.kdc.start();
  const k = startRenew(rig, [...KEYTAB_ARGS(rig), '--retry-cap=30s'], undefined, { aklog: `${rig.bin}/aklog-kafs` });
  try {
    await until('an attempt', () => (k.status() as unknown as Status | undefined)?.lastError ?? undefined, 8000);
    assert.equal(rig.lines('aklog-kafs.log').map((l) => l.slice(l.indexOf(' ') + 1)), ['args=test.local']);
  } finally {
    await k.kill();
  }
});

test('pagsh without the OpenAFS kernel module makes no PAG: renew refuses and says what to do', () => {
  if (fs.existsSync('/proc/fs/openafs')) return; // a real OpenAFS client: pagsh works there
  fs.rmSync(rig.file('child.env'), { force: true });
  const r = spawnSync(EXE, ['renew', `--run-dir=${rig.runDir}`, `--keytab=${rig.kdc.keytab}`, '--pag-wrapper=pagsh', '--', rig.file('bin/child')], { env: rig.env, encoding: 'utf8', timeout: 10_000 });
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, /pagsh ran but made no PAG .*--pag-wrapper=keyctl/);
  assert.not.ok(fs.existsSync(rig.file('child.env')), 'the command never ran outside a PAG');
});

test.run();
