// The in-memory XenStore against cxenstored's observable behaviour (xen.git docs/misc/xenstore.txt).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimStore } from '../../src/sim/xenstore';
import { Toolstack, vbdPaths, vdevToDevid } from '../../src/sim/toolstack';
import { isXenStoreError } from '../../src/xen/xenstore';

const tick = () => new Promise((r) => setImmediate(r));
const code = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return isXenStoreError(err) ? err.code : String(err);
  }
};

test('write creates parents; read returns the value with no NUL; directory lists children', async () => {
  const xs = new SimStore().connect(0);
  await xs.write('/a/b/c', 'hello');
  assert.is(await xs.read('/a/b/c'), 'hello');
  assert.is((await xs.read('/a/b/c')).length, 5);
  assert.is(await xs.read('/a/b'), '');
  assert.equal(await xs.directory('/a'), ['b']);
  assert.is(await code(xs.directory('/nope')), 'ENOENT');
  assert.is(await code(xs.read('/nope')), 'ENOENT');
  assert.is(await xs.tryRead('/nope'), undefined);
  assert.is(await code(xs.write('/bad//path', 'x')), 'EINVAL');
  assert.is(await code(xs.write('/trailing/', 'x')), 'EINVAL');
});

test('rm is recursive; a missing node is fine, a missing parent is ENOENT', async () => {
  const xs = new SimStore().connect(0);
  await xs.write('/a/b/c', '1');
  await xs.write('/a/b/d', '2');
  await xs.rm('/a/b');
  assert.equal(await xs.directory('/a'), []);
  assert.is(await code(xs.rm('/a/missing')), 'ok');
  assert.is(await code(xs.rm('/a/missing/child')), 'ENOENT');
});

test('a watch fires once at registration with the watched path, then for descendants, asynchronously', async () => {
  const xs = new SimStore().connect(0);
  const events: string[] = [];
  await xs.write('/w/x', '1');
  const w = await xs.watch('/w', (p) => events.push(p));
  assert.equal(events, [], 'the initial event is not delivered inside watch()');
  await tick();
  assert.equal(events, ['/w']);
  await xs.write('/w/x/y', '2');
  assert.equal(events, ['/w'], 'not re-entrant inside write()');
  await tick();
  assert.equal(events, ['/w', '/w/x/y']);
  await xs.write('/other', '3');
  await xs.rm('/w/x');
  await tick();
  assert.equal(events, ['/w', '/w/x/y', '/w/x']);
  await w.close();
  await xs.write('/w/z', '4');
  await tick();
  assert.is(events.length, 3, 'no event after close');
});

test('removing a parent fires a watch set below it with the watch path', async () => {
  const xs = new SimStore().connect(0);
  await xs.write('/p/q/r', '1');
  const events: string[] = [];
  await xs.watch('/p/q/r', (p) => events.push(p));
  await tick();
  await xs.rm('/p');
  await tick();
  assert.equal(events, ['/p/q/r', '/p/q/r']);
});

test('a transaction conflicting with a concurrent change gets EAGAIN; transaction() retries it', async () => {
  const store = new SimStore();
  const a = store.connect(0);
  const b = store.connect(0);
  await a.write('/t/v', '0');
  const raw = a.begin();
  assert.is(await raw.ops.read('/t/v'), '0');
  await raw.ops.write('/t/v', '1');
  await b.write('/t/v', '2');
  assert.is(await code(raw.commit()), 'EAGAIN');
  assert.is(await a.read('/t/v'), '2', 'the failed commit changed nothing');

  let attempts = 0;
  await a.transaction(async (t) => {
    attempts++;
    const v = Number(await t.read('/t/v'));
    if (attempts === 1) await b.write('/t/v', '10');
    await t.write('/t/v', String(v + 1));
  });
  assert.is(attempts, 2);
  assert.is(await a.read('/t/v'), '11');

  // Snapshot isolation: writes inside stay invisible until commit; unrelated changes do not conflict.
  const tx = a.begin();
  await tx.ops.write('/t/w', 'new');
  assert.is(await a.tryRead('/t/w'), undefined);
  await b.write('/elsewhere', 'x');
  await tx.commit();
  assert.is(await a.read('/t/w'), 'new');
});

test('transactional changes fire watches on commit only', async () => {
  const xs = new SimStore().connect(0);
  const events: string[] = [];
  await xs.mkdir('/tx');
  await xs.watch('/tx', (p) => events.push(p));
  await tick();
  const tx = xs.begin();
  await tx.ops.write('/tx/a', '1');
  await tick();
  assert.equal(events, ['/tx']);
  await tx.commit();
  await tick();
  assert.equal(events, ['/tx', '/tx/a']);
});

test('permissions as libxl sets them: the guest reads the backend dir but cannot write it', async () => {
  const store = new SimStore();
  const dom0 = store.connect(0);
  const guest = store.connect(7);
  const other = store.connect(8);
  const ts = new Toolstack(dom0);
  await ts.createDomain(7);
  const p = await ts.addVbd({ domid: 7, target: '/images/g7.img' });
  assert.is(await guest.read(`${p.backend}/params`), '/images/g7.img');
  assert.is(await code(guest.write(`${p.backend}/state`, '4')), 'EACCES');
  assert.is(await code(guest.write(`${p.backend}/new-key`, 'x')), 'EACCES');
  assert.is(await code(guest.rm(p.backend)), 'EACCES');
  assert.is(await code(other.read(`${p.backend}/params`)), 'EACCES');
  assert.is(await code(other.read(`${p.frontend}/state`)), 'EACCES');
  // The guest owns its frontend dir and creates keys in it; dom0 reads them.
  await guest.write(`${p.frontend}/ring-ref`, '8');
  assert.is(await dom0.read(`${p.frontend}/ring-ref`), '8');
  assert.equal((await dom0.getPermissions(`${p.frontend}/ring-ref`))[0], { domid: 7, access: 'n' });
  assert.is(await code(guest.setPermissions(p.backend, [{ domid: 7, access: 'b' }])), 'EACCES');
  // Relative paths resolve against the guest's home.
  assert.is(await guest.read(`device/vbd/${p.devid}/backend`), p.backend);
});

test('a guest gets watch events only for nodes it can read', async () => {
  const store = new SimStore();
  const dom0 = store.connect(0);
  const guest = store.connect(3);
  await dom0.write('/secret/x', '1');
  await dom0.setPermissions('/secret', [{ domid: 0, access: 'n' }]);
  const events: string[] = [];
  await guest.watch('/secret', (p) => events.push(p));
  await tick();
  await dom0.write('/secret/x', '2');
  await tick();
  assert.equal(events, ['/secret'], 'only the initial event');
});

test('@introduceDomain and @releaseDomain fire', async () => {
  const store = new SimStore();
  const xs = store.connect(0);
  const events: string[] = [];
  await xs.watch('@releaseDomain', (p) => events.push(p));
  await xs.watch('@introduceDomain', (p) => events.push(p));
  await tick();
  assert.equal(events, ['@releaseDomain', '@introduceDomain']);
  store.introduceDomain(4);
  store.releaseDomain(4);
  await tick();
  assert.equal(events, ['@releaseDomain', '@introduceDomain', '@introduceDomain', '@releaseDomain']);
  assert.equal(await xs.getPermissions('/local/domain/4'), [{ domid: 4, access: 'n' }]);
});

test('a closed connection rejects with ECONNRESET and gets no more events', async () => {
  const store = new SimStore();
  const xs = store.connect(0);
  const events: string[] = [];
  await xs.watch('/c', (p) => events.push(p));
  xs.close();
  await store.connect(0).write('/c/x', '1');
  await tick();
  assert.equal(events, []);
  assert.is(await code(xs.read('/c')), 'ECONNRESET');
});

test('toolstack: libxl keys, vdev numbers, removal in one transaction and destroy', async () => {
  assert.is(vdevToDevid('xvda'), 51712);
  assert.is(vdevToDevid('xvdb'), 51728);
  assert.is(vdevToDevid('xvdq'), (1 << 28) | (16 << 8));
  assert.is(vbdPaths({ domid: 3, kind: 'vbd3' }).backend, '/local/domain/0/backend/vbd3/3/51712');
  const store = new SimStore();
  const dom0 = store.connect(0);
  const ts = new Toolstack(dom0);
  const p = await ts.addVbd({ domid: 3, vdev: 'xvdb', target: '/x.img', access: 'ro' });
  const back = Object.fromEntries(
    await Promise.all((await dom0.directory(p.backend)).map(async (k) => [k, await dom0.read(`${p.backend}/${k}`)])),
  );
  assert.equal(back, {
    frontend: p.frontend, 'frontend-id': '3', online: '1', removable: '0', bootable: '1', state: '1', dev: 'xvdb', type: 'phy',
    mode: 'r', 'device-type': 'disk', 'discard-enable': '0', specification: 'xen', params: '/x.img', script: '/etc/xen/scripts/block-afsfile',
  });
  const front = Object.fromEntries(await Promise.all((await dom0.directory(p.frontend)).map(async (k) => [k, await dom0.read(`${p.frontend}/${k}`)])));
  assert.equal(front, { backend: p.backend, 'backend-id': '0', state: '1', 'virtual-device': '51728', 'device-type': 'disk', trusted: '1', protocol: 'x86_64-abi' });
  assert.equal(await dom0.getPermissions(p.backend), [{ domid: 0, access: 'n' }, { domid: 3, access: 'r' }]);
  assert.equal(await dom0.getPermissions(p.frontend), [{ domid: 3, access: 'n' }, { domid: 0, access: 'r' }]);

  // A backend that answers Closing with Closed, as the device must.
  const seen: string[] = [];
  await dom0.watch(`${p.backend}/state`, async () => {
    const s = await dom0.tryRead(`${p.backend}/state`);
    const online = await dom0.tryRead(`${p.backend}/online`);
    if (s) seen.push(`${s}/${online}`);
    if (s === '5') await dom0.write(`${p.backend}/state`, '6');
  });
  const r = await ts.removeVbd(p, { timeoutMs: 2000 });
  assert.ok(r.closed);
  assert.ok(seen.includes('5/0'), `online=0 together with state=5: ${seen.join(' ')}`);
  assert.not.ok(seen.includes('5/1'), 'never state 5 with online still 1');
  assert.is(await dom0.tryRead(p.backend), undefined);
  assert.is(await dom0.tryRead(p.frontend), undefined);
  assert.is(await dom0.tryRead('/local/domain/0/backend/vbd'), undefined, 'empty parents removed');

  // Without a backend, removal times out and still destroys.
  const q = await ts.addVbd({ domid: 3, target: '/y.img' });
  const r2 = await ts.removeVbd(q, { timeoutMs: 100 });
  assert.not.ok(r2.closed);
  assert.is(await dom0.tryRead(q.backend), undefined);
});

test.run();
