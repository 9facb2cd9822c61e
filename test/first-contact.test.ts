// A fresh machine: what is missing is said in one line (test/deps.sh --check, `npm test`,
// build.mjs), and a suite whose set-up fails shows that failure and leaks no temp dir.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from './helpers/exe';
import { withTempDir } from './helpers/temp';

const DEPS = path.join(ROOT, 'test/deps.sh');
const lines = (s: string): string[] => s.split('\n').filter(Boolean);

test('deps.sh --check: silent and 0 on this machine (the tests below need what it checks)', () => {
  const r = spawnSync('bash', [DEPS, '--check'], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout + r.stderr, '');
});

test('deps.sh --check: one line naming each missing program, its package and the install command', () => {
  withTempDir((tmp) => {
    // A PATH with every program the table probes except kinit; a root with the headers but no
    // /usr/lib/xen-*/bin/xenstored.
    const bin = path.join(tmp, 'bin');
    fs.mkdirSync(bin);
    const probes = ['gcc', 'strip', 'ld', 'setpriv', 'unshare', 'strace', 'xenstore-read', 'krb5kdc', 'kdb5_util', 'kadmin.local', 'klist', 'keyctl', 'pagsh', 'aklog', 'systemd-notify', 'systemd-analyze', 'systemctl', 'fusermount3', 'pkg-config'];
    for (const p of probes) fs.writeFileSync(path.join(bin, p), '#!/bin/sh\n', { mode: 0o755 });
    for (const h of ['usr/include/stdio.h', 'usr/include/linux/types.h', 'usr/include/xen/io/blkif.h', 'usr/bin/python3', 'usr/include/fuse3/fuse.h']) {
      fs.mkdirSync(path.join(tmp, 'root', path.dirname(h)), { recursive: true });
      fs.writeFileSync(path.join(tmp, 'root', h), '');
    }
    const r = spawnSync('/bin/bash', [DEPS, '--check'], { encoding: 'utf8', env: { PATH: bin, AFSFILE_DEPS_ROOT: path.join(tmp, 'root') } });
    assert.is(r.status, 1);
    assert.is(r.stdout, '');
    assert.equal(lines(r.stderr), [
      'afsfile tests: missing xenstored (xen-utils-4.17), kinit (krb5-user); install them with: test/deps.sh '
      + '(apt-get install --no-install-recommends xen-utils-4.17 krb5-user)',
    ]);
  }, 'afsfile-deps-');
});

test('npm test stops before building when xenstored is missing, with that one line', () => {
  const r = spawnSync('npm', ['test', '--silent'], {
    cwd: ROOT, encoding: 'utf8', timeout: 60_000,
    env: { ...process.env, AFSFILE_TEST_XENSTORED: path.join(os.tmpdir(), 'no-such-xenstored') },
  });
  assert.is.not(r.status, 0);
  const ours = lines(r.stdout + r.stderr).filter((l) => l.includes('missing'));
  assert.equal(ours, ['afsfile tests: missing xenstored (xen-utils-4.17); install them with: test/deps.sh (apt-get install --no-install-recommends xen-utils-4.17)']);
  assert.not.match(r.stdout + r.stderr, /passed|build:/, 'neither built nor ran a test');
});

test('build.mjs without gcc and binutils: one line naming the packages, no ENOENT stack', () => {
  withTempDir((tmp) => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'build.mjs'), '--if-needed'], { encoding: 'utf8', env: { PATH: tmp } });
    assert.is(r.status, 1);
    assert.equal(lines(r.stderr), ['build: cannot build: missing gcc, binutils (the native addon and the executable need gcc, libc6-dev and binutils); install with: apt-get install gcc binutils']);
  }, 'afsfile-nogcc-');
});

test('a set-up that fails half-way: its own error is printed, the process fails, no temp dir is left', () => {
  const prefix = `afsfile-setup-fails-${process.pid}-`;
  const r = spawnSync(process.execPath, [path.join(ROOT, 'build/test/fixtures/setup-fails.js')], {
    encoding: 'utf8', timeout: 30_000,
    env: { ...process.env, RIG_PREFIX: prefix, AFSFILE_TEST_XENSTORED: path.join(os.tmpdir(), 'no-such-xenstored'), PATH: '/usr/bin:/bin', NO_COLOR: '1' },
  });
  assert.is.not(r.status, 0);
  assert.match(r.stderr, /set-up failed: Error: xenstored not found/);
  // The broken teardown's TypeError is one line after it, not the error that replaces it.
  const after = lines(r.stdout + r.stderr).filter((l) => l.includes('Cannot read properties'));
  assert.equal(after, ["tear-down after the failed set-up also failed: Cannot read properties of undefined (reading 'close')"]);
  assert.equal(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(prefix)), [], 'temp dir removed');
});

test.run();
