// `afsfile check` beyond the daemons: the whole config file for every role (as `sshd -t`), the
// block-afsfile link, run_hotplug_scripts, failed devices, kinit/aklog with a keytab, and a
// fix that names the unit this host starts xenstored with. AFSFILE_CHECK_ROOT is a temp root.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run, tempDir } from './helpers/exe';

type Finding = { check: string; ok: boolean; detail: string; fix?: string };

function check(root: string, conf: string, extra: NodeJS.ProcessEnv = {}): { status: number | null; findings: Finding[]; stderr: string } {
  const r = run(['check', '--json'], {
    env: { PATH: process.env.PATH, AFSFILE_CHECK_ROOT: root, AFSFILE_CONFIG: conf, AFSFILE_RUN_DIR: path.join(root, 'run'), XENSTORED_PATH: path.join(root, 'no-xenstored'), ...extra },
  });
  return { status: r.status, findings: (JSON.parse(r.stdout || '{"findings":[]}') as { findings: Finding[] }).findings, stderr: r.stderr };
}

test('the config file: every problem of every role with file and line; check still runs the rest', () => {
  const t = tempDir('afsfile-check-');
  try {
    const conf = path.join(t.dir, 'afsfile.conf');
    fs.writeFileSync(conf, 'max-queues = 0\nhotplug-wait = 3h\nmargin = soon\nfsync-interval = 5s\n' +
      'image-roots = /srv/xen, images\n');
    const r = check(t.dir, conf);
    assert.is(r.status, 1, r.stderr);
    const bad = r.findings.filter((f) => f.check === 'config');
    assert.equal(bad.map((f) => [f.ok, f.detail.split(' expects')[0]]), [[false, `${conf}:1: max-queues`], [false, `${conf}:2: hotplug-wait`], [false, `${conf}:3: margin`], [false, `${conf}:5: image-roots`]]);
    assert.match(bad[0]!.fix!, /afsfile help config/);
    assert.ok(r.findings.some((f) => f.check === 'xenstored'), 'the other checks ran too');

    fs.writeFileSync(conf, 'fsync-interval = 5s\nhold-timeout = 5m\n');
    const good = check(t.dir, conf).findings.find((f) => f.check === 'config')!;
    assert.equal([good.ok, good.detail], [true, `${conf}: 2 setting(s), all valid`]);
  } finally {
    t.cleanup();
  }
});

test('block-afsfile link, run_hotplug_scripts, xenstored unit name (Debian 12 `xen` vs upstream xenstored)', () => {
  const t = tempDir('afsfile-check-');
  try {
    const f = (name: string): Finding => check(t.dir, '/dev/null').findings.find((x) => x.check === name)!;
    assert.not.ok(f('block-afsfile').ok);
    assert.match(f('block-afsfile').detail, /\/etc\/xen\/scripts\/block-afsfile is missing/);
    fs.mkdirSync(path.join(t.dir, 'etc/xen/scripts'), { recursive: true });
    fs.symlinkSync('/usr/lib/xen/bin/afsfile', path.join(t.dir, 'etc/xen/scripts/block-afsfile'));
    assert.match(f('block-afsfile').detail, /-> \/usr\/lib\/xen\/bin\/afsfile, which is missing/);
    fs.mkdirSync(path.join(t.dir, 'usr/lib/xen/bin'), { recursive: true });
    fs.writeFileSync(path.join(t.dir, 'usr/lib/xen/bin/afsfile'), '#!/bin/sh\n', { mode: 0o755 });
    assert.ok(f('block-afsfile').ok);

    assert.ok(f('run_hotplug_scripts').ok);
    fs.writeFileSync(path.join(t.dir, 'etc/xen/xl.conf'), '#run_hotplug_scripts=1\nrun_hotplug_scripts = 0\n');
    assert.not.ok(f('run_hotplug_scripts').ok);
    assert.match(f('run_hotplug_scripts').fix!, /run_hotplug_scripts=1 in \/etc\/xen\/xl\.conf/);
    fs.writeFileSync(path.join(t.dir, 'etc/xen/xl.conf'), 'run_hotplug_scripts="1"\n');
    assert.ok(f('run_hotplug_scripts').ok);

    assert.match(f('xenstored').fix!, /^systemctl start xenstored /, 'nothing known: the upstream name');
    fs.mkdirSync(path.join(t.dir, 'etc/init.d'), { recursive: true });
    fs.writeFileSync(path.join(t.dir, 'etc/init.d/xen'), '');
    assert.match(f('xenstored').fix!, /^systemctl start xen /, 'Debian 12: the xen init script');
    fs.mkdirSync(path.join(t.dir, 'lib/systemd/system'), { recursive: true });
    fs.writeFileSync(path.join(t.dir, 'lib/systemd/system/xenstored.service'), '');
    assert.match(f('xenstored').fix!, /^systemctl start xenstored /);
  } finally {
    t.cleanup();
  }
});

test('failed devices are problems; kinit and aklog must exist when a keytab is set', () => {
  const t = tempDir('afsfile-check-');
  try {
    const conf = path.join(t.dir, 'afsfile.conf');
    fs.mkdirSync(path.join(t.dir, 'run/status'), { recursive: true });
    fs.writeFileSync(path.join(t.dir, 'run/status/worker.json'), JSON.stringify({
      version: '1', pid: process.pid, updated: new Date().toISOString(),
      devices: [{ backend: '/local/domain/0/backend/vbd/7/51712', domid: 7, devid: 51712, image: '/srv/a.img', phase: 'failed', message: 'gave up after 5 restarts' }],
    }));
    fs.writeFileSync(conf, '');
    let r = check(t.dir, conf);
    const dev = r.findings.find((x) => x.check === 'devices')!;
    assert.not.ok(dev.ok);
    assert.is(dev.detail, '7/51712 /srv/a.img: failed (gave up after 5 restarts)');
    assert.ok(r.findings.find((x) => x.check === 'kerberos tools')!.ok, 'no keytab: not needed');

    const bin = path.join(t.dir, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(conf, `keytab = ${t.dir}/k.keytab\naklog = ${bin}/my-aklog -d\n`);
    r = check(t.dir, conf, { PATH: bin });
    const tools = r.findings.find((x) => x.check === 'kerberos tools')!;
    assert.equal([tools.ok, tools.detail, tools.fix], [false, `a keytab is configured but kinit and ${bin}/my-aklog are not on PATH`, 'apt-get install krb5-user openafs-krb5']);
    fs.writeFileSync(path.join(bin, 'kinit'), '#!/bin/sh\n', { mode: 0o755 });
    fs.writeFileSync(path.join(bin, 'my-aklog'), '#!/bin/sh\n', { mode: 0o755 });
    assert.ok(check(t.dir, conf, { PATH: bin }).findings.find((x) => x.check === 'kerberos tools')!.ok);
  } finally {
    t.cleanup();
  }
});

test('a config error: the worker exits 78 (RestartPreventExitStatus) naming file and line', () => {
  const t = tempDir('afsfile-check-');
  try {
    const conf = path.join(t.dir, 'afsfile.conf');
    fs.writeFileSync(conf, '# x\nmax-requests = 1.5\n');
    const r = run(['worker', '--platform', 'sim'], { env: { PATH: process.env.PATH, AFSFILE_CONFIG: conf, AFSFILE_RUN_DIR: path.join(t.dir, 'run'), XENSTORED_PATH: path.join(t.dir, 'none') } });
    assert.is(r.status, 78);
    assert.is(r.stderr, `afsfile: ${conf}:2: max-requests expects a whole number from 1 to 4096; got "1.5"\n`);
  } finally {
    t.cleanup();
  }
});

test.run();
