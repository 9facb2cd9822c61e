// One Kerberos identity per guest domain (issue 17, host part), against a real MIT KDC, the real
// xenstored and simulated guests served by a real `afsfile worker --platform sim`: two domains
// bound to two identities, a third on the default (the host identity). Each identity's opener
// runs in a session keyring of its own (`keyctl session -`, renew's kAFS wrapper), renews with
// its own keytab, and starts its domains' device processes.
//
// No AFS client runs on this host, so two fakes stand in, each in one line: aklog puts a key
// `afs@test.local` holding the principal into the caller's session keyring (where kAFS keeps its
// token) and `tokens` reads it back per keyring; the file server's refusal of an expired token
// is faultfs answering EACCES on that identity's image (test/faultfs). The real cell is the
// Xen stages' (test/xen, group afs).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { inPrivateMountNamespace } from '../helpers/faultfs';
import { EXE } from '../helpers/exe';
import { hotplugAdd } from '../helpers/hotplug-add';
import { startWorker } from '../helpers/worker';
import { TestKdc } from '../helpers/kdc';
import { until } from '../helpers/wait';
import { type Bench, faultDevice, imagePath, startFaultBench } from '../proofs/faults';
import { type SimDevice, attachSimDevice } from '../proofs/sim-devices';
import { BLOCK } from '../proofs/verified-workload';

const say = (l: string): void => void process.stdout.write(`${l}\n`);

// kinit as the openers find it on PATH: one line per call (keytab, keyring), then the real one.
const KINIT = `#!/bin/sh
echo "$(date +%s.%N) ses=$(keyctl id @s) cc=$KRB5CCNAME args=$*" >> "$RIG/kinit.log"
exec /usr/bin/kinit "$@"
`;
// aklog (OpenAFS style, -c CELL): the token is a key in the caller's session keyring.
const AKLOG = `#!/bin/sh
p=$(klist 2>/dev/null | sed -n 's/^Default principal: //p')
ses=$(keyctl id @s)
echo "$(date +%s.%N) ses=$ses principal=$p" >> "$RIG/aklog.log"
klist -s || exit 1
cell=test.local; [ "$1" = -c ] && cell=$2
key=$(keyctl add user "afs@$cell" "$p" @s) || exit 1
echo "$(date +%s.%N) ses=$ses principal=$p key=$key" >> "$RIG/aklog.log"
exp=$(date -u -d '+1 hour' '+%b %d %H:%M')
echo "User's (AFS ID 1000) rxkad tokens for $cell [Expires $exp]" > "$RIG/tokens-$ses.txt"
`;
const TOKENS = `#!/bin/sh
echo; echo "Tokens held by the Cache Manager:"; echo
f="$RIG/tokens-$(keyctl id @s).txt"; [ -f "$f" ] && cat "$f"
echo "   --End of list--"
`;

interface Ctx {
  kdc: TestKdc;
  dir: string;
  bin: string;
  keytabs: Record<string, string>;
  env: NodeJS.ProcessEnv;
}

async function makeCtx(): Promise<Ctx> {
  const kdc = await TestKdc.create();
  await kdc.start();
  const dir = kdc.dir;
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  for (const [n, t] of [['kinit', KINIT], ['aklog-rec', AKLOG], ['tokens', TOKENS]] as const) {
    fs.writeFileSync(path.join(bin, n), t, { mode: 0o755 });
  }
  const keytabs: Record<string, string> = {};
  for (const who of ['web', 'db', 'web2']) {
    keytabs[who] = path.join(dir, `${who}.keytab`);
    kdc.addPrincipal(`id/${who}`, keytabs[who]!);
  }
  const env = { ...kdc.env, PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, RIG: dir };
  return { kdc, dir, bin, keytabs, env };
}

function config(c: Ctx, identities: string[]): string {
  return [
    `aklog = ${path.join(c.bin, 'aklog-rec')}`, 'afs-client = openafs', 'cell = test.local',
    'lifetime = 60s', 'margin = 10s', 'retry-cap = 3s', 'pag-wrapper = keyctl', ...identities, '',
  ].join('\n');
}

const WEB = (c: Ctx): string => `identity.web = keytab=${c.keytabs.web} domains=guest41,guest44`;
const DB = (c: Ctx): string => `identity.db = keytab=${c.keytabs.db} domains=guest42`;

type Json = Record<string, unknown>;
const readJson = (f: string): Json | undefined => {
  try { return JSON.parse(fs.readFileSync(f, 'utf8')) as Json; } catch { return undefined; }
};
const workerJson = (b: Bench): Json => readJson(path.join(b.rig.runDir, 'status/worker.json')) ?? {};
const identityJson = (b: Bench, label: string): Json | undefined =>
  readJson(path.join(b.rig.runDir, `status/identity-${label}.json`));
const openerPid = (b: Bench, label: string): number | undefined =>
  ((workerJson(b).identities ?? []) as Json[]).find((i) => i.label === label)?.pid as number | undefined;
const entryOf = (b: Bench, d: SimDevice): Json | undefined =>
  ((workerJson(b).devices ?? []) as Json[]).find((e) => e.backend === d.vbd.backend);
const pidOf = (b: Bench, d: SimDevice): Promise<number> =>
  until(`${d.vbd.backend}: its process`, () => entryOf(b, d)?.childPid as number | undefined, 15_000);

const environOf = (pid: number): string[] =>
  fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
const ppidOf = (pid: number): number =>
  Number(/^PPid:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
const lines = (c: Ctx, name: string): string[] => {
  const f = path.join(c.dir, name);
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter(Boolean) : [];
};
/** The ids of the keys a keyring holds (keyctl run by the test, as root: the keyring's user may list it). */
const keysIn = (keyring: string): string[] =>
  execFileSync('keyctl', ['rlist', keyring], { encoding: 'utf8' }).trim().split(/\s+/).filter(Boolean);
/** The token keys each principal's aklog added (in the keyring it ran in). */
const tokenKeys = (c: Ctx, principal: string): string[] =>
  lines(c, 'aklog.log').filter((l) => l.includes(`principal=${principal} key=`)).map((l) => /key=(\d+)/.exec(l)![1]!);
/** The session keyring each principal's aklog ran in (the opener's: aklog is its child). */
function keyringOf(c: Ctx, principal: string): string | undefined {
  return lines(c, 'aklog.log').filter((l) => l.includes(`principal=${principal}`)).map((l) => /ses=(\d+)/.exec(l)?.[1])
    .at(-1);
}

async function attach(b: Bench, domid: number, name: string): Promise<SimDevice> {
  return faultDevice(b, domid, name, 1 << 20, 20_000);
}

if (inPrivateMountNamespace()) {
  let c: Ctx;
  test.before(async () => { c = await makeCtx(); });
  test.after(async () => { await c?.kdc.destroy(); });

  test('two identities and the default: each device process in its identity\'s keyring, with its token, ' +
    'no credential cache', async () => {
    // db asks for tickets of its own lifetime; web takes renew's (60s).
    const b = await startFaultBench('afsfile-ident-', [], {
      config: config(c, [WEB(c), `${DB(c)} lifetime=40s margin=5s`]), env: c.env });
    try {
      const web = await attach(b, 41, 'web.img');
      const db = await attach(b, 42, 'db.img');
      const host = await attach(b, 43, 'host.img');
      for (const label of ['web', 'db']) {
        await until(`identity ${label} has a token`, () => {
          const t = identityJson(b, label)?.tokenExpires as Record<string, string> | null | undefined;
          return t?.['test.local'] !== undefined;
        }, 20_000);
      }
      assert.is(identityJson(b, 'web')?.principal, 'id/web@TEST.LOCAL');
      assert.is(identityJson(b, 'db')?.principal, 'id/db@TEST.LOCAL');
      const ses = { web: keyringOf(c, 'id/web@TEST.LOCAL')!, db: keyringOf(c, 'id/db@TEST.LOCAL')! };
      const mine = execFileSync('keyctl', ['id', '@s'], { encoding: 'utf8' }).trim();
      assert.ok(ses.web && ses.db && ses.web !== ses.db && ses.web !== mine && ses.db !== mine,
        `a session keyring per identity: ${JSON.stringify(ses)}, the worker's ${mine}`);
      const tok = { web: tokenKeys(c, 'id/web@TEST.LOCAL'), db: tokenKeys(c, 'id/db@TEST.LOCAL') };
      const inRing = (ring: string, keys: string[]): boolean => keys.some((k) => keysIn(ring).includes(k));
      assert.ok(inRing(ses.web, tok.web) && !inRing(ses.web, tok.db), 'web\'s keyring holds web\'s token, not db\'s');
      assert.ok(inRing(ses.db, tok.db) && !inRing(ses.db, tok.web), 'db\'s keyring holds db\'s token, not web\'s');
      assert.ok(!inRing(mine, [...tok.web, ...tok.db]), 'the host identity\'s keyring holds neither');
      for (const l of lines(c, 'kinit.log')) {
        const who = l.includes(c.keytabs.web!) ? 'web' : l.includes(c.keytabs.db!) ? 'db' : undefined;
        assert.ok(who, `kinit only for the identities here: ${l}`);
        assert.match(l, `ses=${ses[who]} `, `kinit for ${who} runs in its keyring: ${l}`);
        assert.match(l, who === 'db' ? ' -l 40s ' : ' -l 60s ', `${who}'s lifetime: its own, else renew's: ${l}`);
      }
      const sup = b.rig.worker.proc.pid!;
      for (const [d, label] of [[web, 'web'], [db, 'db'], [host, 'host']] as const) {
        const pid = await pidOf(b, d);
        const env = environOf(pid);
        const parent = label === 'host' ? sup : openerPid(b, label);
        const whose = label === 'host' ? 'the supervisor' : `its opener ${parent}`;
        assert.is(ppidOf(pid), parent, `${label}'s device process ${pid} is a child of ${whose} (a session keyring ` +
          'is inherited, and nothing on the way changes it)');
        assert.not.ok(env.some((e) => e.startsWith('KRB5CCNAME=')), `${label}'s device process: no credential cache`);
        assert.not.ok(env.some((e) => /krb5cc/.test(e)), `nor a cache path anywhere in its environment`);
        assert.is(entryOf(b, d)?.identity, label);
        if (label !== 'host') {
          assert.ok(env.includes(`AFSFILE_IDENTITY=${label}`));
          assert.ok(env.includes(`AFSFILE_RENEW_PID=${parent}`), 'a token error kicks its own identity\'s renewal');
          assert.is(ppidOf(parent!), sup, 'the opener is the supervisor\'s child');
          assert.not.ok(environOf(parent!).some((e) => e.startsWith('KRB5CCNAME=')), 'nor has the opener');
        }
        const data = new Uint8Array(BLOCK).fill(label.length);
        await d.front.write(0, data);
        assert.equal(await d.front.read(0, BLOCK), data);
      }
      const ccacheDir = path.join(b.rig.runDir, 'identities', 'web');
      assert.is(fs.statSync(ccacheDir).mode & 0o777, 0o700, 'the identity\'s cache directory is root\'s alone');
      assert.not.match(JSON.stringify(identityJson(b, 'web')), /krb5cc/, 'no cache path in the status');
      const st = JSON.parse(execFileSync(EXE, ['status', '--json'], {
        encoding: 'utf8', env: { ...c.env, AFSFILE_RUN_DIR: b.rig.runDir, XENSTORED_PATH: b.rig.xs.socketPath },
      })) as { identities: Json[] };
      const row = (l: string): Json | undefined => st.identities.find((i) => i.label === l);
      assert.is(row('web')?.principal, 'id/web@TEST.LOCAL');
      assert.equal(row('web')?.devices, ['41/xvda']);
      assert.equal(row('db')?.devices, ['42/xvda']);
      assert.ok(row('web')?.running && (row('web')?.tokenExpires as Json)['test.local']);
      for (const d of [web, db, host]) d.guest.close();
    } finally {
      await b.close();
    }
  });

  test('hotplug error: names domain, identity label and image, never the principal; identity-required refuses',
    async () => {
    const b = await startFaultBench('afsfile-ident-', [], {
      config: `${config(c, [WEB(c)])}identity-default = required\n`, env: c.env });
    try {
      // The image exists but the identity may not open it (mode 000 on a local file system: the
      // device process has no capability that would override it, as an AFS ACL refuses).
      await until('identity web renewed', () => Number(identityJson(b, 'web')?.renewals) >= 1, 20_000);
      const img = path.join(b.rig.dir, 'secret.img');
      fs.writeFileSync(img, Buffer.alloc(4096));
      fs.chmodSync(img, 0);
      await b.rig.ts.createDomain(44);
      const p = await b.rig.ts.addVbd({ domid: 44, target: img });
      const status = await until('afsfile-status', () => b.rig.c.tryRead(`${p.backend}/afsfile-status`), 20_000);
      const err = (await b.rig.c.tryRead(`${p.backend}/afsfile-error`)) ?? '';
      say(`afsfile-error: ${err}`);
      assert.is(status, 'error');
      assert.match(err, 'domain guest44, identity web');
      assert.match(err, 'secret.img');
      assert.not.match(err, /id\/web|TEST\.LOCAL/, 'no principal in a key the guest can read');
      assert.match(b.rig.worker.stderr(), /principal id\/web@TEST\.LOCAL/, 'the principal is in the worker\'s log');
      // The hotplug script, as libxl runs it: the label in hotplug-error, the principal in its log.
      const hp = await hotplugAdd(b.rig, p.backend);
      say(`hotplug log: ${hp.log.trim().split('\n').join(' | ')}`);
      assert.is(hp.status, 1);
      const shown = (await b.rig.c.tryRead(`${p.backend}/hotplug-error`)) ?? '';
      assert.match(shown, 'domain guest44, identity web');
      assert.not.match(shown, /id\/web|TEST\.LOCAL/, 'no principal in hotplug-error');
      assert.match(hp.log, `identity web: principal id/web@TEST.LOCAL (keytab ${c.keytabs.web})`);
      await b.rig.ts.createDomain(45);
      const q = await b.rig.ts.addVbd({ domid: 45, target: imagePath(b.ffs.mount, 'any.img') });
      assert.is(await until('afsfile-status', () => b.rig.c.tryRead(`${q.backend}/afsfile-status`), 10_000), 'error');
      assert.match((await b.rig.c.tryRead(`${q.backend}/afsfile-error`)) ?? '', /^identity-required: domain guest45 /);
    } finally {
      await b.close();
    }
  });

  test('a keytab that stops working holds only its own domain\'s devices, then fails them after the hold ' +
    'timeout; the others go on', async () => {
    const b = await startFaultBench('afsfile-ident-', ['--hold-timeout', '4'], {
      config: config(c, [WEB(c), DB(c)]), env: c.env });
    try {
      const web = await attach(b, 41, 'web.img');
      const db = await attach(b, 42, 'db.img');
      const host = await attach(b, 43, 'host.img');
      for (const label of ['web', 'db']) {
        await until(`identity ${label} renewed`, () => Number(identityJson(b, label)?.renewals) >= 1, 20_000);
      }
      const dbKinits = (): number => lines(c, 'kinit.log').filter((l) => l.includes(c.keytabs.db!)).length;
      const db0 = dbKinits();
      // web's key changes at the KDC: its keytab no longer works. Its file server then refuses
      // web's writes (EACCES, as OpenAFS answers an expired token).
      c.kdc.kadmin('cpw -randkey id/web');
      await b.ffs.ctl('fail write,fsync EACCES 60000 web.img');
      const t0 = performance.now();
      const held = web.front.write(0, new Uint8Array(BLOCK).fill(1)).then(() => 'ok', (e: Error) => e.message);
      // The others go on meanwhile.
      let others = 0;
      while (performance.now() - t0 < 3000) {
        for (const d of [db, host]) {
          const data = new Uint8Array(BLOCK).fill(others & 0xff);
          await d.front.write(8, data);
          await d.front.flush();
          others++;
        }
      }
      await until('web\'s renewal failing', () => Number(identityJson(b, 'web')?.failures) >= 1, 10_000);
      const outcome = await held;
      const heldMs = performance.now() - t0;
      say(`web's write answered after ${heldMs.toFixed(0)} ms (${outcome}); ${others} writes+flushes on the others`);
      assert.is.not(outcome, 'ok', 'the held write failed after the hold timeout');
      assert.ok(heldMs >= 3500, `held for the hold timeout first (${heldMs.toFixed(0)} ms)`);
      assert.ok(others >= 10, `the other domains went on (${others})`);
      const webStatus = identityJson(b, 'web')!;
      assert.ok((webStatus.lastError as Json | null)?.message, 'web\'s status says why');
      assert.is(identityJson(b, 'db')?.failures, 0, 'db is not affected');
      assert.ok(dbKinits() - db0 <= 1, 'the kick went to web\'s renewal, not db\'s');
      assert.ok(/ses=\d+/.test(lines(c, 'kinit.log').at(-1) ?? ''));
      await b.ffs.ctl('clear');
      await db.front.write(0, new Uint8Array(BLOCK).fill(5));
      for (const d of [web, db, host]) d.guest.close();
    } finally {
      await b.close();
    }
  });

  test('SIGHUP adds, changes and removes identities; other domains\' devices are untouched; a removed ' +
    'identity keeps its running devices until they detach', async () => {
    const b = await startFaultBench('afsfile-ident-', [], { config: config(c, [WEB(c), DB(c)]), env: c.env });
    const conf = path.join(b.rig.dir, 'afsfile.conf');
    try {
      const web = await attach(b, 41, 'web.img');
      const db = await attach(b, 42, 'db.img');
      const host = await attach(b, 43, 'host.img');
      const pids = { web: await pidOf(b, web), db: await pidOf(b, db), host: await pidOf(b, host) };
      const dbOpener = openerPid(b, 'db')!;
      // web moves to another keytab, db goes, web2 comes for guest46.
      const web2 = `identity.web2 = keytab=${c.keytabs.web2} domains=guest46`;
      const webChanged = `identity.web = keytab=${c.keytabs.web2} principal=id/web2@TEST.LOCAL domains=guest41,guest44`;
      fs.writeFileSync(conf, config(c, [webChanged, web2]));
      b.rig.worker.proc.kill('SIGHUP');
      await until('web renewed as id/web2', () => identityJson(b, 'web')?.principal === 'id/web2@TEST.LOCAL', 20_000);
      await until('web2 started', () => openerPid(b, 'web2') !== undefined, 10_000);
      assert.match(b.rig.worker.stderr(), /identity db removed: its 1 running device\(s\) keep it until they detach/);
      const now = { web: await pidOf(b, web), db: await pidOf(b, db), host: await pidOf(b, host) };
      assert.equal(now, pids, 'no running device process was touched');
      assert.is(openerPid(b, 'db'), dbOpener, 'the removed identity stays while its device runs');
      for (const d of [web, db, host]) {
        await d.front.write(16, new Uint8Array(BLOCK).fill(9));
        await d.front.flush();
      }
      const w2 = await attach(b, 46, 'w2.img');
      assert.is(entryOf(b, w2)?.identity, 'web2');
      assert.is(ppidOf(await pidOf(b, w2)), openerPid(b, 'web2'));
      db.guest.close();
      assert.ok((await b.rig.ts.removeVbd(db.vbd, { timeoutMs: 10_000 })).closed);
      await until('the removed identity\'s opener stops with its last device', () => {
        try { process.kill(dbOpener, 0); return false; } catch { return true; }
      }, 20_000);
      // The domain's next disk follows the bindings as they are now: the default (host).
      const again = await attach(b, 42, 'db2.img');
      assert.is(entryOf(b, again)?.identity, 'host');
      assert.is(ppidOf(await pidOf(b, again)), b.rig.worker.proc.pid);
      again.guest.close();
      await sleep(100);
      for (const d of [web, host, w2]) d.guest.close();
    } finally {
      await b.close();
    }
  });

  test('an opener killed outright: its devices quiesce and come back under its next process; others untouched',
    async () => {
    const b = await startFaultBench('afsfile-ident-', [], { config: config(c, [WEB(c), DB(c)]), env: c.env });
    try {
      const web = await attach(b, 41, 'web.img');
      const db = await attach(b, 42, 'db.img');
      const data = new Uint8Array(BLOCK).fill(4);
      await web.front.write(0, data);
      await web.front.flush();
      const [webPid, dbPid, opener] = [await pidOf(b, web), await pidOf(b, db), openerPid(b, 'web')!];
      process.kill(opener, 'SIGKILL');
      const next = await until('a new web opener', () => {
        const p = openerPid(b, 'web');
        return p !== undefined && p !== opener ? p : undefined;
      }, 20_000);
      const again = await until('web served by a new process', async () => {
        const p = entryOf(b, web)?.childPid as number | undefined;
        return p !== undefined && p !== webPid && fs.existsSync(`/proc/${p}`) ? p : undefined;
      }, 30_000);
      assert.is(ppidOf(again), next, 'the new device process is the new opener\'s child');
      assert.equal(await web.front.read(0, BLOCK), data, 'the guest goes on where it was');
      assert.is(await pidOf(b, db), dbPid, 'db\'s device process was not touched');
      for (const d of [web, db]) d.guest.close();
    } finally {
      await b.close();
    }
  });

  test('a worker restart: an adopted device keeps the identity it was served with; new disks follow the new ' +
    'bindings', async () => {
    const b = await startFaultBench('afsfile-ident-', [], { config: config(c, [WEB(c), DB(c)]), env: c.env });
    let next: Awaited<ReturnType<typeof startWorker>> | undefined;
    try {
      // On the rig's local file system, where flock is a real lock (faultfs's stays host-only).
      const web = await attachSimDevice(b.rig, { domid: 41, size: 1 << 20, timeoutMs: 20_000 });
      const data = new Uint8Array(BLOCK).fill(7);
      await web.front.write(0, data);
      await web.front.flush();
      const oldPid = await pidOf(b, web);
      assert.is(await b.rig.c.tryRead(`${web.vbd.backend}/afsfile-identity`), 'web', 'the label, kept in XenStore');
      // While the worker is down, guest41 moves to db's binding.
      fs.writeFileSync(path.join(b.rig.dir, 'afsfile.conf'), config(c, [
        `identity.web = keytab=${c.keytabs.web} domains=guest44`,
        `identity.db = keytab=${c.keytabs.db} domains=guest42,guest41`]));
      const devFile = (): Json | undefined => readJson(path.join(b.rig.runDir, 'status/dev-41-51712.json'));
      assert.is((devFile()?.lock as Json | undefined)?.state, 'held');
      await b.rig.worker.stop('SIGKILL');
      next = await startWorker(b.rig.xs.socketPath, b.rig.runDir, [], b.rig.exe, c.env);
      const w = next;
      const pid = await until('web adopted by a new process', () => {
        const e = ((readJson(path.join(b.rig.runDir, 'status/worker.json'))?.devices ?? []) as Json[])
          .find((x) => x.backend === web.vbd.backend);
        const p = e?.childPid as number | undefined;
        return p !== undefined && p !== oldPid && fs.existsSync(`/proc/${p}`) ? p : undefined;
      }, 30_000);
      assert.is(entryOf(b, web)?.identity, 'web', 'pinned: the identity it was served with');
      // Its old process kept the image lock for the new one (its opener left it alone), as the
      // host identity's devices do when the supervisor dies.
      const lock = await until('the new process\'s lock', () => {
        const f = devFile();
        return f?.pid === pid ? f.lock as Json | undefined : undefined;
      }, 10_000);
      assert.is(lock.state, 'adopted', `the lock handed on, not taken anew: ${JSON.stringify(lock)}`);
      await until('the new worker\'s web opener', () => openerPid(b, 'web'), 10_000);
      assert.is(ppidOf(pid), openerPid(b, 'web'), 'its process is the new web opener\'s child');
      assert.match(w.stderr(), /adopted with identity web, which served it before \(the bindings say db/);
      assert.equal(await web.front.read(0, BLOCK), data, 'the guest goes on where it was');
      // guest41's next disk follows the bindings as they are now (no frontend needed: the verdict).
      const backing = imagePath(b.ffs.backing, 'second.img');
      fs.mkdirSync(path.dirname(backing), { recursive: true });
      fs.writeFileSync(backing, Buffer.alloc(1 << 20));
      const second = await b.rig.ts.addVbd({ domid: 41, vdev: 'xvdb', target: imagePath(b.ffs.mount, 'second.img') });
      assert.is(await until('xvdb opened', () => b.rig.c.tryRead(`${second.backend}/afsfile-status`), 20_000),
        'opened');
      const e2 = ((workerJson(b).devices ?? []) as Json[]).find((x) => x.backend === second.backend);
      assert.is(e2?.identity, 'db', 'a new disk of guest41: db, as bound now');
      web.guest.close();
    } finally {
      if (next) await next.stop('SIGTERM');
      await b.close();
    }
  });

  test.run();
}
