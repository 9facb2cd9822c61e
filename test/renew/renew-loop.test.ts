// dist/afsfile renew against a real MIT KDC: renewal across lifetimes, the PAG, the private
// credential cache, signals (ALRM, USR1, TERM/INT/HUP) and exit statuses.
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import { setup, teardown } from '../helpers/hooks';
import * as assert from 'uvu/assert';
import { EXE } from '../helpers/exe';
import { KEYTAB_ARGS, type Rig, alive, callerSessionKeyring, environOf, listeningSocketsOf, makeRig, ppidOf, startRenew, times } from './rig';
import { until } from '../helpers/wait';

let rig: Rig;

setup(test, async () => {
  rig = await makeRig();
  await rig.kdc.start();
});
teardown(test, async () => {
  await rig?.cleanup();
});
test.before.each(() => {
  for (const f of ['aklog.log', 'kinit.log', 'aklog.exit', 'aklog.notoken', 'aklog-kafs.log', 'tokens.txt']) fs.rmSync(rig.file(f), { force: true });
});

test('renews before expiry across several lifetimes; aklog gets a valid cache inside the child\'s new session keyring', async () => {
  // 4 s tickets, 1 s margin: renewal every 2 s (half the lifetime).
  const r = startRenew(rig, [...KEYTAB_ARGS(rig), '--lifetime=4s', '--margin=1s', '--retry-cap=2s']);
  try {
    const child = await r.childInfo();
    const started = Date.now();
    await sleep(9_000);
    const aklogs = rig.lines('aklog.log');
    const at = times(aklogs);
    assert.ok(aklogs.length >= 3 && aklogs.length <= 7, `aklog ran ${aklogs.length} times in 9 s:\n${aklogs.join('\n')}\n${r.stderr()}`);
    const kinits = times(rig.lines('kinit.log'));
    for (let i = 1; i < kinits.length; i++) assert.ok(kinits[i]! - kinits[i - 1]! < 4, `kinit ${kinits[i]! - kinits[i - 1]!} s after the previous one: not before that ticket's 4 s expiry`);
    assert.ok(at.length >= kinits.length - 1, 'aklog after every kinit (the last may be running)');
    for (const l of aklogs) {
      assert.match(l, /valid=yes/, 'aklog found a valid ticket cache (klist -s)');
      assert.match(l, /args=-c test\.local$/);
      assert.ok(l.includes(`ses=${child.ses} `), `aklog runs in the child's session keyring: ${l} vs ${child.ses}`);
    }
    assert.is.not(child.ses, callerSessionKeyring(), 'the child has a new session keyring, not the caller\'s');
    const s = r.status()!;
    assert.is(s.principal, 'host/renew@TEST.LOCAL');
    assert.is(s.failures, 0);
    assert.ok(Number(s.renewals) >= 3, `every successful attempt counts as a renewal the worker reopens for: ${String(s.renewals)}`);
    const tokens = s.tokenExpires as Record<string, string>;
    assert.ok(Date.parse(tokens['test.local']!) > Date.now(), `the token aklog set, read back with tokens: ${JSON.stringify(tokens)}`);
    assert.ok(Date.parse(String(s.ticketExpires)) > Date.now(), `ticket still valid after ${(Date.now() - started) / 1000} s: ${s.ticketExpires}`);
    assert.ok(Date.parse(String(s.nextAttempt)) < Date.parse(String(s.ticketExpires)));
    assert.not.match(JSON.stringify(s), /krb5cc|FILE:/, 'no cache path in the status');
  } finally {
    await r.kill();
  }
});

test('the credential cache is private: 0600 in a 0700 dir, unreadable by nobody, only in the child\'s environment', async () => {
  const r = startRenew(rig, [...KEYTAB_ARGS(rig), '--lifetime=60s', '--margin=5s']);
  try {
    const child = await r.childInfo();
    const ccache = path.join(rig.runDir, 'renew', 'krb5cc');
    assert.is(child.ccache, `FILE:${ccache}`);
    await until('the first ticket', () => fs.existsSync(ccache));
    assert.is(fs.statSync(ccache).mode & 0o777, 0o600);
    assert.is(fs.statSync(path.dirname(ccache)).mode & 0o777, 0o700);
    const nobody = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'cat', ccache], { encoding: 'utf8' });
    assert.is.not(nobody.status, 0, 'another user cannot read the cache');
    assert.match(nobody.stderr, /Permission denied/);
    const inner = Number(child.renewpid);
    assert.is(ppidOf(inner), r.proc.pid, 'the renewing process is the re-executed one, a child of the first');
    for (const pid of [r.proc.pid!, inner]) {
      assert.not.ok(environOf(pid).some((e) => e.startsWith('KRB5CCNAME=')), `renew ${pid} itself has no KRB5CCNAME`);
    }
    assert.ok(environOf(Number(child.pid)).includes(`KRB5CCNAME=FILE:${ccache}`));
  } finally {
    await r.kill();
  }
  assert.not.ok(fs.existsSync(path.join(rig.runDir, 'renew', 'krb5cc')), 'the cache is removed when renew ends');
});

test('SIGALRM refreshes at once (coalesced, forwarded by the outer renew); SIGUSR1 opens no inspector; SIGTERM reaches the child and its status is renew\'s', async () => {
  const r = startRenew(rig, [...KEYTAB_ARGS(rig), '--lifetime=60s', '--margin=5s']);
  const child = await r.childInfo();
  const inner = Number(child.renewpid);
  await until('the first aklog', () => rig.lines('aklog.log').length === 1);
  await sleep(1200);
  // A burst of kicks is one refresh.
  for (let i = 0; i < 5; i++) process.kill(inner, 'SIGALRM');
  await until('a refresh after SIGALRM', () => rig.lines('aklog.log').length === 2, 3000);
  await sleep(1500);
  assert.is(rig.lines('aklog.log').length, 2, 'five kicks in a row: one refresh');
  // Sent to the outer process (what systemd's main pid is), it is passed on.
  process.kill(r.proc.pid!, 'SIGALRM');
  await until('a refresh after SIGALRM to the outer renew', () => rig.lines('aklog.log').length === 3, 3000);
  assert.is(rig.lines('kinit.log').length, 3);

  for (const pid of [r.proc.pid!, inner]) process.kill(pid, 'SIGUSR1');
  await sleep(500);
  for (const pid of [r.proc.pid!, inner]) {
    assert.ok(alive(pid), `renew ${pid} survives SIGUSR1`);
    assert.equal(listeningSocketsOf(pid), [], `renew ${pid} listens on nothing after SIGUSR1`);
  }

  process.kill(r.proc.pid!, 'SIGTERM');
  const end = await r.exited;
  assert.is(end.code, 55, `the child's exit status (it exits 55 on TERM)\n${r.stderr()}`);
  assert.equal(rig.lines('child.signals'), ['TERM']);
  assert.not.ok(alive(inner));
  assert.is(r.status()!.state, 'stopped');
});

test('INT and HUP are passed on; exit statuses and deaths by signal are mirrored, with a keytab and without', async () => {
  for (const [sig, code] of [['SIGINT', 42], ['SIGHUP', 41]] as const) {
    const r = startRenew(rig, [...KEYTAB_ARGS(rig), '--lifetime=60s']);
    await r.childInfo();
    process.kill(r.proc.pid!, sig);
    assert.is((await r.exited).code, code, sig);
    assert.equal(rig.lines('child.signals'), [sig.slice(3)]);
  }
  // The exit-status cases touch no shared file: run them side by side, each in its own run dir.
  const cases = [
    { keytab: true, command: ['/bin/sh', '-c', 'exit 7'], code: 7 },
    { keytab: true, command: ['/bin/sh', '-c', 'kill -9 $$'], code: 128 + 9 },
    { keytab: true, command: ['/nonexistent/command'], code: 127 },
    { keytab: false, command: ['/bin/sh', '-c', 'kill -9 $$'], code: 128 + 9 },
    { keytab: false, command: ['/nonexistent/command'], code: 127 },
  ];
  const runs = cases.map((c, i) => startRenew(rig, c.keytab ? KEYTAB_ARGS(rig) : [], c.command, { runDir: rig.file(`run-exit-${i}`) }));
  const ends = await Promise.all(runs.map((r) => r.exited));
  cases.forEach((c, i) => {
    assert.is(ends[i]!.code, c.code, `${c.command.join(' ')} (keytab: ${c.keytab}): ${runs[i]!.stderr()}`);
    if (c.code === 127) assert.match(runs[i]!.stderr(), /cannot run \/nonexistent\/command: not found/);
  });
});

test('HUP: renew reads the config file again (cells, lifetime) and refreshes at once; the child gets HUP too; a broken file changes nothing', async () => {
  const conf = rig.env.AFSFILE_CONFIG!;
  const saved = fs.readFileSync(conf, 'utf8');
  fs.writeFileSync(conf, 'cell = first.local\nlifetime = 60s\n');
  // A child that lives through HUP (the rig's child exits on it) and records it.
  const child = ['/bin/sh', '-c', 'trap \'echo HUP >> "$RIG/child.signals"\' HUP; while :; do sleep 0.2; done'];
  const r = startRenew(rig, KEYTAB_ARGS(rig), child, { cellsFromConfig: true });
  try {
    await until('the first tokens', () => rig.lines('aklog.log').length === 1, 10_000);
    assert.match(rig.lines('aklog.log')[0]!, /args=-c first\.local$/);
    fs.writeFileSync(conf, 'cell = second.local\ncell = third.local\nlifetime = 4s\nmargin = 1s\n');
    process.kill(r.proc.pid!, 'SIGHUP');
    // aklog runs once per cell.
    const cellsDone = (): boolean => ['second', 'third'].every((c) => rig.lines('aklog.log').some((l) => l.endsWith(`args=-c ${c}.local`)));
    await until('aklog for the new cells, at once', cellsDone, 5000)
      .catch((e: Error) => { throw new Error(`${e.message}\naklog: ${rig.lines('aklog.log').join('\n')}\nstderr: ${r.stderr()}`); });
    assert.equal(r.status()!.cells, ['second.local', 'third.local']);
    await until('the child got HUP', () => rig.lines('child.signals').includes('HUP'), 5000);
    assert.match(r.stderr(), /SIGHUP: reloaded the settings .*cells second\.local third\.local, lifetime 4 s/);
    // 4 s tickets now: renewed every ~2 s.
    const n = rig.lines('kinit.log').length;
    await sleep(5000);
    assert.ok(rig.lines('kinit.log').length >= n + 2, `kinit ran ${rig.lines('kinit.log').length - n} times in 5 s with 4 s tickets`);

    fs.writeFileSync(conf, 'lifetime = forever\n');
    process.kill(r.proc.pid!, 'SIGHUP');
    await until('the refusal', () => /SIGHUP: the settings were not reloaded, the old ones stay: .*lifetime/.test(r.stderr()), 5000);
    assert.equal(r.status()!.cells, ['second.local', 'third.local']);
    assert.is(r.proc.exitCode, null, 'renew kept running');
  } finally {
    fs.writeFileSync(conf, saved);
    await r.kill();
  }
});

test('without a keytab renew only runs the command: same keyring, no tickets, no AFSFILE_RENEW_PID', async () => {
  const r = startRenew(rig, []);
  try {
    const child = await r.childInfo();
    assert.is(child.ses, callerSessionKeyring());
    assert.is(child.renewpid, '');
    assert.is(child.ccache, '');
    await sleep(300);
    assert.is(rig.lines('kinit.log').length, 0);
    assert.is(r.status()!.managed, false);
  } finally {
    await r.kill();
  }
});

test('--no-pag: tickets are renewed in the caller\'s keyring, by a single process', async () => {
  const r = startRenew(rig, [...KEYTAB_ARGS(rig), '--no-pag', '--lifetime=60s']);
  try {
    const child = await r.childInfo();
    assert.is(child.ses, callerSessionKeyring());
    assert.is(Number(child.renewpid), r.proc.pid);
    await until('aklog', () => rig.lines('aklog.log').length === 1);
    assert.is(r.status()!.pag, 'none');
  } finally {
    await r.kill();
  }
});

test('bad invocations exit 2 before anything runs', () => {
  const env = rig.env;
  for (const args of [['renew'], ['renew', `--keytab=${rig.kdc.keytab}`, '--lifetime=soon', '--', 'true'], ['renew', '--pag-wrapper=magic', '--', 'true']]) {
    const r = spawnSync(EXE, args, { env, encoding: 'utf8' });
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
  }
});

test.run();
