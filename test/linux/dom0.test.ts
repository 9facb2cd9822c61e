// The dom0 loopback self-test (src/xen/linux/selftest.ts): runs for real only where /dev/xen
// exists (the Xen-in-QEMU harness); here it checks that it refuses cleanly, with the same
// clear message as the platform, and leaves no descriptor behind.
import * as fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { linuxPlatformProblem } from '../../src/xen/linux';
import { dom0SelfTest } from '../../src/xen/linux/selftest';

const problem =
  linuxPlatformProblem() ?? (fs.existsSync('/dev/xen/gntalloc') ? undefined : '/dev/xen/gntalloc missing');

test('without /dev/xen: fails with ENOENT and the platform message, no fd leaked', async () => {
  if (!problem) return console.log('  (skipped: /dev/xen is here; the next test runs for real)');
  const before = fs.readdirSync('/proc/self/fd').length;
  const err = await dom0SelfTest().then(() => undefined, (e: NodeJS.ErrnoException) => e);
  assert.is(err?.code, 'ENOENT');
  assert.match(err!.message, /^\/dev\/xen\/evtchn missing: load xen-evtchn and xen-gntdev/);
  assert.is(fs.readdirSync('/proc/self/fd').length, before);
});

test('in a Xen dom0: event channel and grant loopback through the real devices', async () => {
  if (problem) return console.log(`  (skipped: ${problem})`);
  const lines = await dom0SelfTest({ rounds: 200 });
  for (const l of lines) console.log(`  ${l}`);
  assert.ok(lines.some((l) => l.startsWith('gntdev: one grant copy')));
});

test.run();
