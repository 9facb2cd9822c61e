// createLinuxPlatform and linuxPlatformProblem on a machine without /dev/xen: one clear error
// (ENOENT, what to load, --platform sim), no leaked descriptors when the second device fails.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as linux from '../../src/xen/linux';
import { createLinuxPlatform, linuxPlatformProblem, openEventChannels, openGrantTable } from '../../src/xen/linux';
import { native } from '../../src/native/addon';
import type { NativeAddon } from '../../src/native/types';
import { withTempDir } from '../helpers/temp';

const HINT = 'load xen-evtchn and xen-gntdev (modprobe xen-evtchn xen-gntdev) or run in a Xen dom0; use --platform sim for the simulator';
const haveXen = fs.existsSync('/dev/xen/evtchn');
const openFds = () => fs.readdirSync('/proc/self/fd').length;

test('src/xen/linux (index) exports what the worker and `afsfile check` import lazily', () => {
  assert.type(linux.createLinuxPlatform, 'function');
  assert.type(linux.linuxPlatformProblem, 'function');
});

test('no /dev/xen: createLinuxPlatform() fails with ENOENT and the message that says what to do', () => {
  if (haveXen) return console.log('  (skipped: this machine has /dev/xen/evtchn)');
  assert.throws(() => createLinuxPlatform(), (e: NodeJS.ErrnoException) =>
    e.code === 'ENOENT' && e.message === `/dev/xen/evtchn missing: ${HINT} (ENOENT)`);
  assert.is(linuxPlatformProblem(), `/dev/xen/evtchn missing: ${HINT}`);
});

test('linuxPlatformProblem: missing, not a device, fine', () => {
  withTempDir((tmp) => {
    const missing = path.join(tmp, 'gntdev');
    assert.is(linuxPlatformProblem({ evtchn: '/dev/null', gntdev: missing }), `${missing} missing: ${HINT}`);
    const file = path.join(tmp, 'file');
    fs.writeFileSync(file, '');
    assert.is(
      linuxPlatformProblem({ evtchn: file, gntdev: '/dev/null' }),
      `${file} is not a character device: ${HINT}`,
    );
    assert.is(linuxPlatformProblem({ evtchn: '/dev/null', gntdev: '/dev/null' }), undefined);
  });
});

test('the second device failing closes the first (no leaked fd, no watch thread)', () => {
  withTempDir((tmp) => {
    const before = openFds();
    const missing = path.join(tmp, 'gntdev');
    assert.throws(
      () => createLinuxPlatform({ evtchnPath: '/dev/null', gntdevPath: missing }),
      (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && e.message === `${missing} missing: ${HINT} (ENOENT)`,
    );
    assert.throws(
      () => createLinuxPlatform({ evtchnPath: '/dev/null', gntdevPath: '/dev/null' }),
      (e: NodeJS.ErrnoException) => e.code === 'ENOTTY' && /grant copy/.test(e.message),
    );
    assert.is(openFds(), before);
  });
});

test('devices are opened O_RDWR|O_CLOEXEC (evtchn also O_NONBLOCK for the poll thread)', () => {
  const flags = (fd: number) =>
    parseInt(/^flags:\s+(\d+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1], 8);
  const O_CLOEXEC = 0o2000000;
  const O_ACCMODE = 3;
  const ev = openEventChannels('/dev/null');
  // gntdev over /dev/null: answer the grant-copy probe so the table opens.
  const probeOnly: NativeAddon = { ...native(), ioctl: () => 0 };
  const gt = openGrantTable('/dev/null', probeOnly);
  try {
    assert.is(
      flags(ev.fd) & (O_CLOEXEC | O_ACCMODE | fs.constants.O_NONBLOCK),
      O_CLOEXEC | fs.constants.O_RDWR | fs.constants.O_NONBLOCK,
    );
    assert.is(flags(gt.fd) & (O_CLOEXEC | O_ACCMODE | fs.constants.O_NONBLOCK), O_CLOEXEC | fs.constants.O_RDWR);
  } finally {
    ev.close();
    gt.close();
  }
});

test.run();
