// The worker's pure pieces: backend paths, script matching, the exclusivity table, the restart
// policy, and the XenStore frame reader.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deviceOf, parseBackendPath } from '../../src/worker/backend-path';
import { Image } from '../../src/image/image';
import { ExclusivityTable, type ImageIdentity } from '../../src/worker/exclusivity';
import { parseFromDevice, parseToDevice } from '../../src/worker/device-link';
import { isOurScript } from '../../src/worker/params';
import { RestartPolicy } from '../../src/worker/restart-policy';
import { FrameReader, XsType, encodeFrame } from '../../src/xen/xenstore-client/wire';
import { chooseEndpoint, socketPath } from '../../src/xen/xenstore-client/transport';
import { withTempDir } from '../helpers/temp';

test('backend paths: only /local/domain/N/backend/vbd|vbd3/D/V, events mapped to their device', () => {
  assert.equal(parseBackendPath('/local/domain/0/backend/vbd3/5/51712'), { path: '/local/domain/0/backend/vbd3/5/51712', selfDomid: 0, kind: 'vbd3', domid: 5, devid: 51712 });
  assert.is(parseBackendPath('/local/domain/0/backend/qdisk/5/51712'), undefined);
  assert.is(parseBackendPath('/local/domain/0/backend/vbd/5'), undefined);
  assert.is(parseBackendPath('/local/domain/0/backend/vbd/5/51712/x'), undefined);
  assert.is(deviceOf('/local/domain/0/backend/vbd/5/51712/state')?.devid, 51712);
  assert.is(deviceOf('/local/domain/0/backend/vbd/5'), undefined);
  assert.is(deviceOf('/local/domain/0/backend/vbd/5/51712x/state'), undefined);
});

test('script: the basename decides, exactly', () => {
  assert.ok(isOurScript('/etc/xen/scripts/block-afsfile'));
  assert.ok(isOurScript('block-afsfile'));
  assert.ok(isOurScript('/usr/local/lib/xen/block-afsfile'));
  for (const s of [undefined, '', '/etc/xen/scripts/block', '/etc/xen/scripts/block-afsfile2', '/x/block-afsfile.sh']) {
    assert.not.ok(isOurScript(s), String(s));
  }
});

test('exclusivity: rw excludes all, ro+ro shares, same inode or same realpath is the same image', () => {
  return withTempDir((dir) => {
    const a = path.join(dir, 'a.img');
    fs.writeFileSync(a, Buffer.alloc(512));
    fs.linkSync(a, path.join(dir, 'hard.img'));
    // The supervisor keys the table by what it opened.
    const identify = (p: string): ImageIdentity => {
      const img = Image.open(p, { readOnly: true });
      img.close();
      return { dev: img.dev, ino: img.ino, realpath: img.realpath };
    };
    const t = new ExclusivityTable();
    const ida = identify(a);
    const idh = identify(path.join(dir, 'hard.img'));
    assert.is(idh.ino, ida.ino);
    assert.is.not(idh.realpath, ida.realpath);
    assert.is(t.acquire(ida, { backend: 'b1', domid: 1, writable: false }), undefined);
    assert.is(t.acquire(idh, { backend: 'b2', domid: 2, writable: false }), undefined, 'ro+ro');
    assert.is(t.acquire(ida, { backend: 'b3', domid: 3, writable: true })?.domid, 1, 'rw after ro');
    assert.is(t.acquire(ida, { backend: 'b1', domid: 1, writable: false }), undefined, 're-acquiring is a no-op');
    t.release('b1');
    t.release('b2');
    assert.is(t.acquire(ida, { backend: 'b3', domid: 3, writable: true }), undefined);
    assert.is(t.acquire({ dev: 999, ino: 999, realpath: ida.realpath }, { backend: 'b4', domid: 4, writable: false })?.domid, 3, 'same realpath');
    assert.is(t.size, 1);
  });
});

test('device link messages: only well-formed ones pass (a device process faces a guest)', () => {
  const opened = { t: 'opened', dev: 1, ino: 2, realpath: '/x', image: '/x', writable: true };
  assert.equal(parseFromDevice(opened), opened);
  assert.equal(parseFromDevice({ t: 'ready' }), { t: 'ready' });
  for (const bad of [null, 'opened', { ...opened, dev: '1' }, { ...opened, ino: Number.NaN },
    { ...opened, writable: 1 }, { t: 'open-failed' }, { t: 'open-failed', message: 5 }, { t: 'verdict', ok: true }, { t: 'assign' }]) {
    assert.is(parseFromDevice(bad), undefined, JSON.stringify(bad));
  }
  const long = parseFromDevice({ t: 'open-failed', message: 'x'.repeat(5000) });
  assert.is(long?.t === 'open-failed' && long.message.length, 1000, 'a message is cut');
  const no = { t: 'verdict', ok: false, message: 'busy' };
  assert.equal(parseToDevice(no), no);
  assert.equal(parseToDevice({ t: 'assign', backend: '/b', args: ['--x'], restarts: 0 }),
    { t: 'assign', backend: '/b', args: ['--x'], restarts: 0 });
  for (const bad of [{ t: 'assign', backend: '/b', args: [1], restarts: 0 }, { t: 'verdict', ok: 'yes' },
    { t: 'ready' }]) {
    assert.is(parseToDevice(bad), undefined, JSON.stringify(bad));
  }
});

test('restart policy: backoff, then give up after too many crashes in the window', () => {
  const p = new RestartPolicy(3, 1000, 100, 250);
  assert.equal([p.crashed(0), p.crashed(10), p.crashed(20)], [100, 200, 250]);
  assert.is(p.crashed(30), undefined);
  const q = new RestartPolicy(2, 1000, 100, 10_000);
  q.crashed(0);
  q.crashed(100);
  assert.is(q.crashed(5000), 100, 'old crashes leave the window');
});

test('frame reader: split and joined frames, oversize header is fatal', () => {
  const f1 = encodeFrame({ type: XsType.READ, reqId: 7, txId: 0, payload: Buffer.from('abc') });
  const f2 = encodeFrame({ type: XsType.WATCH_EVENT, reqId: 0, txId: 0, payload: Buffer.from('/a\0tok\0') });
  const r = new FrameReader();
  const all = Buffer.concat([f1, f2]);
  const got = [...r.push(all.subarray(0, 5)), ...r.push(all.subarray(5, 20)), ...r.push(all.subarray(20))];
  assert.equal(got.map((f) => [f.type, f.reqId, f.payload.toString()]), [[2, 7, 'abc'], [15, 0, '/a\0tok\0']]);
  const bad = Buffer.alloc(16);
  bad.writeUInt32LE(5000, 12);
  assert.throws(() => new FrameReader().push(bad), /out of step/);
});

test('endpoint: XENSTORED_PATH, then XENSTORED_RUNDIR/socket, then the default', () => {
  assert.is(socketPath({ XENSTORED_PATH: '/x/s', XENSTORED_RUNDIR: '/r' }), '/x/s');
  assert.is(socketPath({ XENSTORED_RUNDIR: '/r' }), '/r/socket');
  assert.is(socketPath({}), '/var/run/xenstored/socket');
  assert.equal(chooseEndpoint({ XENSTORED_PATH: '/nonexistent/s' }), { kind: 'socket', path: '/nonexistent/s' });
  const ep = chooseEndpoint({ XENSTORED_RUNDIR: '/nonexistent' });
  // No socket there: the device when this host has one, else the socket (to name it in the error).
  assert.ok(ep.kind === 'device' ? fs.existsSync(ep.path) : ep.path === '/nonexistent/socket');
});

test.run();
