// `afsfile check` of the per-domain identities (issue 17): each identity's keytab must be a
// root-only regular file holding a key for its principal, no two identities (nor an identity and
// the host's) may share a principal, a domain may be bound once, identity-default = required
// needs identities, and with the worker running each identity must have renewed. The keytabs
// are made by a real MIT KDC database (kadmin.local); the KDC itself need not run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from './helpers/exe';
import { TestKdc } from './helpers/kdc';

type Finding = { check: string; ok: boolean; detail: string; fix?: string };

let kdc: TestKdc;
let dir: string;
test.before(async () => {
  kdc = await TestKdc.create();
  dir = kdc.dir;
  for (const who of ['web', 'db']) kdc.addPrincipal(`id/${who}`, path.join(dir, `${who}.keytab`));
});
test.after(async () => { await kdc?.destroy(); });

type Checked = { status: number | null; findings: Finding[]; stderr: string };
function check(conf: string, extra: NodeJS.ProcessEnv = {}): Checked {
  const file = path.join(dir, 'afsfile.conf');
  fs.writeFileSync(file, conf);
  const r = run(['check', '--json'], {
    env: { ...kdc.env, AFSFILE_CHECK_ROOT: dir, AFSFILE_CONFIG: file, AFSFILE_RUN_DIR: path.join(dir, 'run'),
      XENSTORED_PATH: path.join(dir, 'no-xenstored'), ...extra },
  });
  const findings = (JSON.parse(r.stdout || '{"findings":[]}') as { findings: Finding[] }).findings;
  return { status: r.status, findings, stderr: r.stderr };
}
const identity = (r: { findings: Finding[] }, label: string): Finding | undefined =>
  r.findings.find((f) => f.check === `identity ${label}`);
const kt = (who: string): string => path.join(dir, `${who}.keytab`);

test('a good identity: keytab root-only with the key, principal shown; no identities: nothing said', () => {
  fs.chmodSync(kt('web'), 0o600);
  const r = check(`identity.web = keytab=${kt('web')} domains=web1,web2\n`);
  const f = identity(r, 'web');
  assert.ok(f?.ok, JSON.stringify(r.findings));
  assert.is(f!.detail,
    `principal id/web@TEST.LOCAL, keytab ${kt('web')}, domains web1, web2 (keytab root-only, key present)`);
  assert.ok(check(`identity.web = keytab=${kt('web')} principal=id/web domains=web1\n`).findings
    .find((x) => x.check === 'identity web')?.ok, 'a principal without its realm is found too');
  assert.not.ok(check('').findings.some((x) => x.check.startsWith('identit')), 'no identity lines: no finding');
});

test('a keytab others may read, one missing, one without the principal: each a problem with its fix', () => {
  fs.chmodSync(kt('db'), 0o644);
  let r = check(`identity.db = keytab=${kt('db')} domains=db1\n`);
  assert.is(r.status, 1);
  let f = identity(r, 'db')!;
  assert.not.ok(f.ok);
  assert.match(f.detail, `keytab ${kt('db')} has mode 0644: group or others may use it`);
  assert.match(f.fix!, `chmod 600 ${kt('db')}`);
  fs.chmodSync(kt('db'), 0o600);
  assert.ok(identity(check(`identity.db = keytab=${kt('db')} domains=db1\n`), 'db')!.ok);

  r = check(`identity.gone = keytab=${path.join(dir, 'gone.keytab')} domains=g1\n`);
  f = identity(r, 'gone')!;
  assert.not.ok(f.ok);
  assert.match(f.detail, `keytab ${path.join(dir, 'gone.keytab')} does not exist`);
  assert.match(f.fix!, /kadmin -q "ktadd -k /);

  r = check(`identity.db = keytab=${kt('db')} principal=id/other domains=db1\n`);
  f = identity(r, 'db')!;
  assert.not.ok(f.ok);
  assert.match(f.detail, `keytab ${kt('db')} has no key for principal id/other (it holds id/db@TEST.LOCAL)`);

  const empty = path.join(dir, 'dir.keytab');
  fs.mkdirSync(empty, { recursive: true });
  assert.match(identity(check(`identity.d = keytab=${empty} domains=d1\n`), 'd')!.detail, 'is not a regular file');
  const loose = path.join(dir, 'loose');
  fs.mkdirSync(loose, { mode: 0o777, recursive: true });
  fs.chmodSync(loose, 0o777);
  fs.copyFileSync(kt('web'), path.join(loose, 'web.keytab'));
  f = identity(check(`identity.web = keytab=${path.join(loose, 'web.keytab')} domains=w1\n`), 'web')!;
  assert.not.ok(f.ok);
  assert.match(f.detail, `its directory ${loose} may be written by group or others`);
});

test('shared principals and double bindings: between identities, and with the host identity', () => {
  let r = check(`identity.web = keytab=${kt('web')} domains=w1\nidentity.web2 = keytab=${kt('web')} domains=w2\n`);
  assert.ok(identity(r, 'web')!.ok);
  assert.match(identity(r, 'web2')!.detail, 'its principal id/web@TEST.LOCAL is identity web\'s too');
  r = check(`keytab = ${kt('web')}\nidentity.web = keytab=${kt('web')} domains=w1\n`);
  assert.match(identity(r, 'web')!.detail, 'is the host identity\'s (renew\'s keytab)');
  r = check(`identity.web = keytab=${kt('web')} domains=w1\nidentity.db = keytab=${kt('db')} domains=d1,w1\n`);
  const conf = r.findings.filter((f) => f.check === 'config' && !f.ok);
  const file = path.join(dir, 'afsfile.conf');
  assert.equal(conf.map((f) => f.detail), [`${file}:2: domain w1 is already bound to identity web (${file}:1)`]);
  r = check('identity-default = required\n');
  const none = r.findings.find((f) => f.check === 'identities')!;
  assert.not.ok(none.ok);
  assert.match(none.detail, 'every disk is refused');
});

test('identities alone need kinit and aklog too; without klist the keytab cannot be checked', () => {
  const bin = path.join(dir, 'empty-bin');
  fs.mkdirSync(bin, { recursive: true });
  const r = check(`identity.web = keytab=${kt('web')} domains=w1\n`, { PATH: bin });
  const tools = r.findings.find((f) => f.check === 'kerberos tools')!;
  assert.not.ok(tools.ok);
  assert.match(tools.detail, 'a keytab is configured but kinit and aklog are not on PATH');
  assert.match(identity(r, 'web')!.detail, 'klist is not on PATH (apt-get install krb5-user)');
  assert.ok(check('').findings.find((f) => f.check === 'kerberos tools')!.ok, 'no keytab, no identity: not needed');
});

test('with the worker running: each identity must have renewed', () => {
  const status = path.join(dir, 'run/status');
  fs.mkdirSync(status, { recursive: true });
  const now = Date.now();
  fs.writeFileSync(path.join(status, 'worker.json'),
    JSON.stringify({ version: '1', pid: process.pid, updated: new Date(now).toISOString() }));
  const conf = `identity.web = keytab=${kt('web')} domains=w1\n`;
  let f = identity(check(conf), 'web')!;
  assert.not.ok(f.ok);
  assert.match(f.detail, 'its process has written no status (identity-web.json): not started');
  const base = { version: '1', pid: process.pid, updated: new Date(now).toISOString(), managed: true, state: 'running',
    pag: 'keyctl', principal: 'id/web@TEST.LOCAL', cells: ['test.local'], renewals: 1, lastAttempt: null,
    lastSuccess: null, failures: 0, nextAttempt: null, childPid: null };
  const exp = new Date(now + 3_600_000).toISOString();
  fs.writeFileSync(path.join(status, 'identity-web.json'), JSON.stringify({ ...base, ticketExpires: exp,
    tokenExpires: { 'test.local': exp }, lastError: null }));
  f = identity(check(conf), 'web')!;
  assert.ok(f.ok, f.detail);
  assert.match(f.detail, `; ticket valid until ${exp}, tokens for test.local`);
  fs.writeFileSync(path.join(status, 'identity-web.json'), JSON.stringify({
    ...base, ticketExpires: null, tokenExpires: null,
    lastError: { time: exp, message: 'kinit: Preauthentication failed', permanent: true } }));
  f = identity(check(conf), 'web')!;
  assert.not.ok(f.ok);
  assert.match(f.detail, 'no valid ticket: kinit: Preauthentication failed');
  fs.rmSync(path.join(dir, 'run'), { recursive: true });
});

test.run();
