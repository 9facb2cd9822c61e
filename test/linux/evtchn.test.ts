// LinuxEventChannels without /dev/xen. The real poll thread reads pending ports from a FIFO
// standing in for /dev/xen/evtchn; unmask writes go to another FIFO the test reads; ioctls are
// recorded (the kernel's answers are what drivers/xen/evtchn.c returns). Then the real failure
// paths: /dev/null answers every evtchn ioctl with ENOTTY, a missing device with ENOENT.
import { setTimeout as sleep } from 'node:timers/promises';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native } from '../../src/native/addon';
import type { NativeAddon, WatchHandle } from '../../src/native/types';
import { LinuxEventChannels, openEventChannels } from '../../src/xen/linux/evtchn';
import { IOCTL } from '../../src/xen/linux/uapi';
import { tempDir } from '../helpers/exe';
import { fifo, u32s } from './helpers';
import { until } from '../helpers/wait';
import { withTempDir } from '../helpers/temp';

const real = native();

interface Rig {
  ev: LinuxEventChannels;
  ioctls: { request: number; arg: number[] | null }[];
  rearms: number;
  pending: ReturnType<typeof fifo>;
  unmasks: ReturnType<typeof fifo>;
  /** The poll thread's callback, to inject what a FIFO cannot produce (EFBIG). */
  deliver: (bytes: Uint8Array | null, errno: number, length: number) => void;
  done(): void;
}

function rig(nextPort = 40): Rig {
  const t = tempDir();
  const pending = fifo(t.dir, 'pending');
  const unmasks = fifo(t.dir, 'unmask');
  const r: Partial<Rig> & { ioctls: Rig['ioctls']; rearms: number } = { ioctls: [], rearms: 0, pending, unmasks };
  let port = nextPort;
  const addon: NativeAddon = {
    ...real,
    ioctl(_fd, request, arg) {
      r.ioctls.push({ request, arg: arg && [...arg] });
      return request === IOCTL.EVTCHN_BIND_INTERDOMAIN ? port++ : 0;
    },
    watchFd(_fd, cb, into): WatchHandle {
      r.deliver = cb;
      return real.watchFd(pending.rfd, cb, into);
    },
    watchRearm(h) {
      r.rearms++;
      real.watchRearm(h);
    },
  };
  // The device writes unmasks to its own fd: here the FIFO's write end (a dup, which ev closes).
  const ev = new LinuxEventChannels(fs.openSync(`/proc/self/fd/${unmasks.wfd}`, 'w'), '/dev/xen/evtchn', addon);
  r.ev = ev;
  r.done = () => {
    ev.close();
    pending.close();
    unmasks.close();
    t.cleanup();
  };
  return r as Rig;
}

test('bindInterdomain encodes {remote_domain, remote_port} and returns the ioctl result as the port', async () => {
  const r = rig(40);
  try {
    assert.is(await r.ev.bindInterdomain(7, 0x1234), 40);
    assert.is(r.ioctls[0].request, IOCTL.EVTCHN_BIND_INTERDOMAIN);
    assert.equal(r.ioctls[0].arg, [7, 0, 0, 0, 0x34, 0x12, 0, 0]);
    await r.ev.bindInterdomain(7, 5).then(
      () => undefined,
      () => assert.unreachable('second bind'),
    );
    await r.ev.bindInterdomain(-1, 5).then(() => assert.unreachable('negative domid'), (e: Error) => assert.instance(e, RangeError));
  } finally {
    r.done();
  }
});

test('restrictDomid: IOCTL_EVTCHN_RESTRICT_DOMID with a u16 domid', () => {
  const r = rig();
  try {
    r.ev.restrictDomid(0x0203);
    assert.equal(r.ioctls, [{ request: IOCTL.EVTCHN_RESTRICT_DOMID, arg: [3, 2] }]);
    assert.throws(() => r.ev.restrictDomid(70000), RangeError);
  } finally {
    r.done();
  }
});

test('notify and unbind: one ioctl each with the port', async () => {
  const r = rig(40);
  try {
    const p = await r.ev.bindInterdomain(1, 2);
    r.ev.notify(p);
    r.ev.unbind(p);
    assert.equal(r.ioctls.slice(1).map((x) => x.request), [IOCTL.EVTCHN_NOTIFY, IOCTL.EVTCHN_UNBIND]);
    assert.equal(r.ioctls[1].arg, [40, 0, 0, 0]);
    assert.equal(r.ioctls[2].arg, [40, 0, 0, 0]);
  } finally {
    r.done();
  }
});

test('pending ports reach onPending; unknown and repeated ports are dropped; unmask writes the port back', async () => {
  const r = rig(40);
  try {
    const a = await r.ev.bindInterdomain(1, 2);
    const b = await r.ev.bindInterdomain(1, 3);
    const seen: [number[], boolean][] = [];
    r.ev.onPending((ports, overflow) => seen.push([[...ports], overflow]));
    fs.writeSync(r.pending.wfd, u32s(b, 999, a, b));
    await until('a delivery', () => seen.length > 0, 2000);
    assert.equal(seen, [[[b, a], false]]);
    r.ev.unmask(a);
    r.ev.unmask(b);
    const back = Buffer.alloc(16);
    const n = fs.readSync(r.unmasks.rfd, back);
    assert.equal([...back.subarray(0, n)], [...u32s(a, b)]);
    assert.equal(r.ev.stats, { wakeups: 1, ports: 2, notifies: 0, unmasks: 2, overflows: 0, readErrors: 0 });
  } finally {
    r.done();
  }
});

test('overflow (EFBIG): IOCTL_EVTCHN_RESET, rearm, and every bound port reported with overflow=true', async () => {
  const r = rig(40);
  try {
    const a = await r.ev.bindInterdomain(1, 2);
    const b = await r.ev.bindInterdomain(2, 2);
    const seen: [number[], boolean][] = [];
    r.ev.onPending((ports, overflow) => seen.push([[...ports].sort(), overflow]));
    r.deliver(null, os.constants.errno.EFBIG, 0);
    assert.equal(r.ioctls.at(-1), { request: IOCTL.EVTCHN_RESET, arg: null });
    assert.is(r.rearms, 1);
    assert.equal(seen, [[[a, b], true]]);
    assert.is(r.ev.stats.overflows, 1);
    // And the watch still works afterwards.
    fs.writeSync(r.pending.wfd, u32s(a));
    await until('a second delivery', () => seen.length > 1, 2000);
    assert.equal(seen[1], [[a], false]);
  } finally {
    r.done();
  }
});

test('after close: no more deliveries, calls fail with EBADF, close is idempotent', async () => {
  const r = rig(40);
  const a = await r.ev.bindInterdomain(1, 2);
  let calls = 0;
  r.ev.onPending(() => calls++);
  r.ev.close();
  r.ev.close();
  fs.writeSync(r.pending.wfd, u32s(a));
  await sleep(30);
  assert.is(calls, 0);
  assert.throws(() => r.ev.notify(a), (e: NodeJS.ErrnoException) => e.code === 'EBADF' && /IOCTL_EVTCHN_NOTIFY/.test(e.message));
  r.ev.unmask(a); // a no-op once closed: a device draining at shutdown must not crash
  r.done();
});

test('real ioctl failures name the operation and carry the errno name (/dev/null: ENOTTY)', async () => {
  const ev = openEventChannels('/dev/null');
  try {
    const err = await ev.bindInterdomain(3, 9).then(() => undefined, (e: NodeJS.ErrnoException) => e);
    assert.ok(err, 'bind must fail');
    assert.is(err.code, 'ENOTTY');
    assert.match(err.message, /^IOCTL_EVTCHN_BIND_INTERDOMAIN\(domain 3, port 9\) on \/dev\/null: .* \(ENOTTY\)$/);
    assert.throws(() => ev.notify(1), (e: NodeJS.ErrnoException) => e.code === 'ENOTTY' && /IOCTL_EVTCHN_NOTIFY\(port 1\)/.test(e.message));
    assert.throws(() => ev.unbind(1), (e: NodeJS.ErrnoException) => e.code === 'ENOTTY' && /IOCTL_EVTCHN_UNBIND/.test(e.message));
  } finally {
    ev.close();
  }
});

test('a missing device: ENOENT with the message that says what to do', () => {
  withTempDir((tmp) => {
    const p = path.join(tmp, 'evtchn');
    assert.throws(() => openEventChannels(p), (e: NodeJS.ErrnoException) =>
      e.code === 'ENOENT' &&
      e.message === `${p} missing: load xen-evtchn and xen-gntdev (modprobe xen-evtchn xen-gntdev) or run in a Xen dom0; use --platform sim for the simulator (ENOENT)`);
  });
});

test.run();
