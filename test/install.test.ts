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
    assert.match(unit, /After=xenstored\.service proc-xen\.mount openafs-client\.service network-online\.target/);
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

test.run();
