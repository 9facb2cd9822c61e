// The fd watch (src/native/fdwatch.c), beyond the contract in fdwatch.test.ts: a rearm and a
// close from inside the callback (evtchn's reset does that), nothing after close, fds epoll
// refuses, unref letting the process exit, and LinuxEventChannels on top of it.
import { setTimeout as sleep } from 'node:timers/promises';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native } from '../../src/native/addon';
import { LinuxEventChannels } from '../../src/xen/linux/evtchn';
import { ROOT, tempDir } from '../helpers/exe';
import { brokenWriteEnd, fifo, u32s } from './helpers';
import { until } from '../helpers/wait';

const addon = native();
const EBADF = 9;

test('a rearm and a close from inside the callback', async () => {
  const t = tempDir();
  const b = brokenWriteEnd(t.dir);
  let calls = 0;
  const h = addon.watchFd(b.fd, () => {
    calls++;
    if (calls < 3) addon.watchRearm(h); // evtchn's reset rearms synchronously
    else addon.watchClose(h);
  });
  try {
    await until('three calls', () => calls >= 3, 2000);
    await sleep(100);
    assert.is(calls, 3, 'closed inside the third callback: no fourth');
  } finally {
    addon.watchClose(h);
    b.close();
    t.cleanup();
  }
});

test('no callback after watchClose; close is idempotent; refused fds throw', async () => {
  const t = tempDir();
  const f = fifo(t.dir, 'evtchn');
  let calls = 0;
  const h = addon.watchFd(f.rfd, () => calls++);
  addon.watchRef(h, false);
  addon.watchRef(h, true);
  addon.watchClose(h);
  addon.watchClose(h);
  addon.watchRearm(h);
  addon.watchRef(h, false);
  fs.writeSync(f.wfd, u32s(1));
  await sleep(50);
  assert.is(calls, 0);
  assert.is(fs.readSync(f.rfd, Buffer.alloc(4)), 4, 'the port is still in the fd: nobody read it');
  // The same fd can be watched again once the old watch is closed (libuv forgets it).
  let again = 0;
  await sleep(10);
  const h2 = addon.watchFd(f.rfd, () => again++);
  fs.writeSync(f.wfd, u32s(2));
  await until('the second watch firing', () => again > 0, 2000);
  addon.watchClose(h2);
  f.close();
  // epoll refuses a directory: the error names libuv's call and carries EPERM.
  const dirFd = fs.openSync(t.dir, 'r');
  try {
    assert.throws(() => addon.watchFd(dirFd, () => {}),
      (e: NodeJS.ErrnoException) => e.errno === 1 && /uv_poll_init/.test(String(e.syscall ?? e.message)));
  } finally {
    fs.closeSync(dirFd);
  }
  assert.throws(() => addon.watchFd(-1, () => {}), (e: NodeJS.ErrnoException) => e.errno === EBADF);
  assert.throws(() => addon.watchFd(0, 'x' as unknown as () => void), /callback/);
  assert.throws(() => addon.watchClose({} as never), /watch handle/);
  t.cleanup();
});

test('an unref\'d watch lets the process exit, a ref\'d one keeps it alive', () => {
  const t = tempDir();
  const script = path.join(t.dir, 'child.js');
  fs.writeFileSync(script, `
    const fs = require('fs');
    const { native } = require(${JSON.stringify(path.join(ROOT, 'build/src/native/addon'))});
    const { execFileSync } = require('child_process');
    execFileSync('mkfifo', [process.argv[2]]);
    const rfd = fs.openSync(process.argv[2], fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const wfd = fs.openSync(process.argv[2], fs.constants.O_WRONLY); // never written: no EOF
    const h = native().watchFd(rfd, () => {});
    native().watchRef(h, process.argv[3] === 'ref');
  `);
  try {
    const unref = spawnSync(process.execPath, [script, path.join(t.dir, 'a'), 'unref'], { timeout: 5000 });
    assert.is(unref.status, 0, `exits by itself: ${unref.stderr}`);
    const ref = spawnSync(process.execPath, [script, path.join(t.dir, 'b'), 'ref'], { timeout: 500 });
    assert.is(ref.signal, 'SIGTERM', 'still running when the timeout killed it');
  } finally {
    t.cleanup();
  }
});

test('LinuxEventChannels: pending ports reach onPending, unmask writes back', async () => {
  const t = tempDir();
  const pending = fifo(t.dir, 'pending');
  const unmasks = fifo(t.dir, 'unmask');
  let port = 40;
  const ev = new LinuxEventChannels(fs.openSync(`/proc/self/fd/${unmasks.wfd}`, 'w'), '/dev/xen/evtchn', {
    ...addon,
    ioctl: () => port++,
    watchFd: (_fd, cb, into) => addon.watchFd(pending.rfd, cb, into),
  });
  try {
    const p = await ev.bindInterdomain(1, 7);
    const got: number[][] = [];
    ev.onPending((ports) => {
      got.push([...ports]);
      for (const q of ports) ev.unmask(q);
    });
    fs.writeSync(pending.wfd, u32s(p, 999, p));
    await until('a delivery', () => got.length > 0, 2000);
    assert.equal(got, [[p]]);
    const back = Buffer.alloc(4);
    assert.is(fs.readSync(unmasks.rfd, back), 4);
    assert.is(back.readUInt32LE(0), p);
    assert.is(ev.stats.wakeups, 1);
  } finally {
    ev.close();
    pending.close();
    unmasks.close();
    t.cleanup();
  }
});

test.run();
