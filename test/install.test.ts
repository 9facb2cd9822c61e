// install.sh into a temporary root: what it installs, idempotence, the installed link working,
// and --uninstall removing exactly what it installed.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, run } from './helpers/exe';
import { withTempDir } from './helpers/temp';

function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      out.push(path.relative(dir, p) + (e.isSymbolicLink() ? ` -> ${fs.readlinkSync(p)}` : e.isDirectory() ? '/' : ''));
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

test('install.sh installs the executable, the hotplug link, the unit and a config; twice is the same', () => {
  withTempDir((tmp) => {
    const env = { ...process.env, DESTDIR: tmp };
    execFileSync('sh', [path.join(ROOT, 'install.sh')], { env, stdio: 'pipe' });
    const first = listTree(tmp);
    assert.ok(first.includes('etc/xen/scripts/block-afsfile -> /usr/lib/xen/bin/afsfile'), first.join('\n'));
    assert.ok(first.includes('usr/lib/xen/bin/afsfile'));
    assert.ok(first.includes('etc/systemd/system/afsfile.service'));
    assert.ok(first.includes('etc/xen/afsfile.conf'));
    const unit = fs.readFileSync(path.join(tmp, 'etc/systemd/system/afsfile.service'), 'utf8');
    assert.match(unit, /ExecStart=\/usr\/lib\/xen\/bin\/afsfile renew -- \/usr\/lib\/xen\/bin\/afsfile worker/);
    assert.match(unit, /Restart=on-failure/);
    assert.match(unit, /Before=xendomains\.service/);
    assert.match(unit, /\nAfter=xen\.service xenstored\.service xencommons\.service proc-xen\.mount openafs-client\.service network-online\.target\n/, 'Debian 12 (xen) and upstream unit names');
    assert.ok(first.includes('usr/sbin/afsfile -> /usr/lib/xen/bin/afsfile'), 'on root\'s PATH');
    const mtime = fs.statSync(path.join(tmp, 'usr/lib/xen/bin/afsfile')).mtimeMs;
    execFileSync('sh', [path.join(ROOT, 'install.sh')], { env, stdio: 'pipe' });
    assert.equal(listTree(tmp), first);
    assert.is(fs.statSync(path.join(tmp, 'usr/lib/xen/bin/afsfile')).mtimeMs, mtime, 'an identical executable is not rewritten');

    // The installed link dispatches to the hotplug role (resolved inside the temp root).
    const link = path.join(tmp, 'etc/xen/scripts/block-afsfile');
    fs.rmSync(link);
    fs.symlinkSync(path.join(tmp, 'usr/lib/xen/bin/afsfile'), link);
    const r = run(['--help'], { exe: link });
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /usage: afsfile hotplug add\|remove/);
    fs.rmSync(link);
    fs.symlinkSync('/usr/lib/xen/bin/afsfile', link);

    // An edited config survives uninstall; everything else goes.
    fs.appendFileSync(path.join(tmp, 'etc/xen/afsfile.conf'), 'fsync-interval = 2\n');
    execFileSync('sh', [path.join(ROOT, 'install.sh'), '--uninstall'], { env, stdio: 'pipe' });
    const left = listTree(tmp).filter((p) => !p.endsWith('/'));
    assert.not.ok(fs.lstatSync(path.join(tmp, 'usr/sbin/afsfile'), { throwIfNoEntry: false }), 'the PATH link is gone');
    assert.equal(left, ['etc/xen/afsfile.conf']);
  });
});

test('an untouched config is removed by --uninstall; bad arguments exit 2', () => {
  withTempDir((tmp) => {
    const env = { ...process.env, DESTDIR: tmp };
    execFileSync('sh', [path.join(ROOT, 'install.sh')], { env, stdio: 'pipe' });
    execFileSync('sh', [path.join(ROOT, 'install.sh'), '--uninstall'], { env, stdio: 'pipe' });
    assert.equal(listTree(tmp).filter((p) => !p.endsWith('/')), []);
    const bad = spawnSync('sh', [path.join(ROOT, 'install.sh'), '--frob'], { env, encoding: 'utf8' });
    assert.is(bad.status, 2);
  });
});

const systemd = (...args: string[]) => spawnSync('systemd-analyze', args, { encoding: 'utf8' });
const haveAnalyze = (): boolean => systemd('--version').status === 0;

test('the unit: notify readiness, no restart loop on config errors, hardened without breaking Xen, AFS, V8', () => {
  withTempDir((tmp) => {
    execFileSync('sh', [path.join(ROOT, 'install.sh')], { env: { ...process.env, DESTDIR: tmp }, stdio: 'pipe' });
    const file = path.join(tmp, 'etc/systemd/system/afsfile.service');
    const unit = fs.readFileSync(file, 'utf8');
    const keys = new Map<string, string[]>();
    for (const m of unit.matchAll(/^([A-Za-z]+)=(.*)$/gm)) keys.set(m[1]!, [...(keys.get(m[1]!) ?? []), m[2]!]);
    const one = (k: string) => keys.get(k)?.join(' ');
    assert.is(one('Type'), 'notify');
    assert.is(one('NotifyAccess'), 'all', 'the worker (renew\'s child) sends READY=1');
    assert.is(one('RestartPreventExitStatus'), '2 78');
    for (const never of ['MemoryDenyWriteExecute', 'PrivateDevices', 'ProcSubset', 'PrivateNetwork', 'ProtectHome', 'IPAddressDeny']) assert.not.ok(keys.has(never), `${never} would break V8, /dev/xen, AFS or images`);
    assert.is(one('ProtectSystem'), 'full', 'not strict: images are written wherever they are');
    for (const dev of ['evtchn', 'gntdev', 'gntalloc', 'privcmd', 'xenbus']) assert.ok(keys.get('DeviceAllow')!.includes(`/dev/xen/${dev} rw`), dev);
    assert.is(one('KeyringMode'), 'private');
    for (const cap of ['CAP_SYS_ADMIN', 'CAP_DAC_OVERRIDE', 'CAP_SETGID', 'CAP_FOWNER']) assert.not.match(one('CapabilityBoundingSet')!, cap, `${cap} is kept`);
    // Every hardening line has its reason: a comment right above it (or above its group).
    const lines = unit.split('\n');
    const start = lines.indexOf('# Hardening.');
    assert.ok(start > 0);
    for (let i = start + 1; i < lines.length && lines[i] !== '[Install]'; i++) {
      if (!/^[A-Za-z]+=/.test(lines[i]!)) continue;
      let j = i - 1;
      while (/^[A-Za-z]+=/.test(lines[j]!)) j--;
      assert.match(lines[j]!, /^# /, `a reason above ${lines[i]}`);
    }
    if (!haveAnalyze()) { console.log('systemd-analyze not installed: the offline checks are skipped (test/deps.sh installs systemd)'); return; }
    // The filter's groups, expanded (a group lists syscalls and further groups).
    const allowed = new Set<string>();
    const todo = one('SystemCallFilter')!.split(' ');
    for (const seen = new Set<string>(); todo.length;) {
      const g = todo.pop()!;
      if (seen.has(g)) continue;
      seen.add(g);
      for (const m of systemd('syscall-filter', g).stdout.matchAll(/^ {4}([@\w-]+)$/gm)) (m[1]!.startsWith('@') ? todo.push(m[1]!) : allowed.add(m[1]!));
    }
    for (const sc of ['io_uring_setup', 'io_uring_enter', 'io_uring_register', 'keyctl', 'add_key', 'setgroups', 'ioctl', 'pidfd_open', 'fallocate', 'mlock', 'openat2']) {
      assert.ok(allowed.has(sc), `${sc} allowed`);
    }
    const sec = systemd('security', '--offline=true', file);
    const level = Number(/Overall exposure level for afsfile\.service: ([\d.]+)/.exec(sec.stdout)?.[1]);
    console.log(`systemd-analyze security --offline: exposure ${level} (9.6 UNSAFE before hardening)`);
    assert.ok(level <= 4.5, `exposure ${level}`);
  });
});

test('--uninstall disables the service: no dangling [Install] link stays', () => {
  withTempDir((tmp) => {
    const env = { ...process.env, DESTDIR: tmp };
    execFileSync('sh', [path.join(ROOT, 'install.sh')], { env, stdio: 'pipe' });
    const wants = path.join(tmp, 'etc/systemd/system/multi-user.target.wants/afsfile.service');
    // The real systemctl enables and disables offline in a root directory (--root): no
    // systemd needs to run for that.
    execFileSync('systemctl', [`--root=${tmp}`, 'enable', 'afsfile.service'], { stdio: 'pipe' });
    assert.ok(fs.lstatSync(wants).isSymbolicLink(), 'systemctl enable made the wants link');
    execFileSync('sh', [path.join(ROOT, 'install.sh'), '--uninstall'], { env, stdio: 'pipe' });
    assert.not.ok(fs.lstatSync(wants, { throwIfNoEntry: false }), 'the wants link is gone');
    const links = listTree(path.join(tmp, 'etc/systemd')).filter((l) => l.includes(' -> '));
    assert.equal(links, [], 'no link of the unit anywhere');
  });
});

// The live path (no DESTDIR, systemd running): systemd cannot run in this test machine (no
// systemd as PID 1), so in a private mount namespace /run/systemd/system exists, the installed
// paths are empty tmpfs or temp dirs, and `systemctl` on PATH is a stand-in that records its
// calls and makes and removes the wants link as the real one does. What it checks is the order:
// `disable --now` while the unit file still exists (systemd stops the service through it),
// the files removed after, `daemon-reload` last.
test('--uninstall on a live system: disable --now first, files removed, daemon-reload last', () => {
  withTempDir((tmp) => {
    const fake = path.join(tmp, 'bin');
    fs.mkdirSync(fake);
    const log = path.join(tmp, 'systemctl.log');
    const wants = '/etc/systemd/system/multi-user.target.wants/afsfile.service';
    fs.writeFileSync(path.join(fake, 'systemctl'), `#!/bin/sh
unit=/etc/systemd/system/afsfile.service
echo "$* unit=$([ -e $unit ] && echo present || echo absent)" >> ${log}
case "$*" in
  "enable --now afsfile.service") mkdir -p ${path.dirname(wants)} && ln -sf $unit ${wants} ;;
  "disable --now afsfile.service") rm -f ${wants} ;;
esac
`, { mode: 0o755 });
    const usr = path.join(tmp, 'usr');
    const script = [
      'set -e',
      'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system',
      'for d in /etc/xen /etc/systemd/system /usr/sbin; do mount -t tmpfs tmpfs $d; done',
      `PREFIX=${usr} sh ${path.join(ROOT, 'install.sh')}`,
      'systemctl enable --now afsfile.service',
      `test -L ${wants}`,
      `PREFIX=${usr} sh ${path.join(ROOT, 'install.sh')} --uninstall`,
      `test ! -e ${wants} && test ! -e /etc/systemd/system/afsfile.service && test ! -e /usr/sbin/afsfile`,
      'test ! -e /etc/xen/scripts/block-afsfile && test ! -e /etc/xen/afsfile.conf',
      `test ! -e ${usr}/lib/xen/bin/afsfile`,
    ].join('\n');
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], {
      env: { ...process.env, PATH: `${fake}:${process.env.PATH ?? '/usr/bin:/bin'}` }, encoding: 'utf8',
    });
    assert.is(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.equal(fs.readFileSync(log, 'utf8').trim().split('\n'), [
      'daemon-reload unit=present', // install
      'enable --now afsfile.service unit=present', // the administrator
      'disable --now afsfile.service unit=present', // --uninstall stops it through its unit file
      'daemon-reload unit=absent', // and forgets it once the file is gone
    ]);
  });
});

test.run();
