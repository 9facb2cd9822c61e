// The XenStore wire client against Debian's real xenstored (test/helpers/xenstored.ts).
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { XenStoreClient, connectXenStore } from '../../src/xen/xenstore-client';
import { XenStoreError, isXenStoreError } from '../../src/xen/xenstore';
import { until } from '../helpers/wait';
import { type Xenstored, startXenstored } from '../helpers/xenstored';

let xs: Xenstored;
let c: XenStoreClient;
const connect = (): Promise<XenStoreClient> => connectXenStore({ env: { XENSTORED_PATH: xs.socketPath } });

async function rejects(p: Promise<unknown>, code: string): Promise<XenStoreError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isXenStoreError(e, code), `expected ${code}, got ${String(e)}`);
    return e as XenStoreError;
  }
  throw new Error(`expected ${code}, the call succeeded`);
}

test.before(async () => {
  xs = await startXenstored();
  c = await connect();
});
test.after(async () => {
  c.close();
  await xs.stop();
});

test('read/write/mkdir/directory/rm behave as cxenstored', async () => {
  await c.write('/t/a/b', 'hello');
  assert.is(await c.read('/t/a/b'), 'hello', 'no trailing NUL on READ');
  assert.is(await c.read('/t/a'), '', 'WRITE creates parents with empty values');
  await c.write('/t/a/empty', '');
  assert.is(await c.read('/t/a/empty'), '');
  await c.mkdir('/t/d');
  assert.equal((await c.directory('/t')).sort(), ['a', 'd']);
  assert.equal(await c.directory('/t/d'), []);
  await rejects(c.read('/t/missing'), 'ENOENT');
  assert.is(await c.tryRead('/t/missing'), undefined);
  await c.rm('/t/a');
  assert.is(await c.tryRead('/t/a/b'), undefined, 'RM is recursive');
  await c.rm('/t/a');
  const e = await rejects(c.directory('/t/a'), 'ENOENT');
  assert.match(e.message, /directory \/t\/a: ENOENT/);
  assert.is(await c.getDomainPath(7), '/local/domain/7');
  const utf = 'värde ✓';
  await c.write('/t/u', utf);
  assert.is(await c.read('/t/u'), utf);
});

test('a directory longer than one payload is listed with DIRECTORY_PART', async () => {
  const names = Array.from({ length: 400 }, (_, i) => `child-with-a-long-name-${i}`);
  await Promise.all(names.map((n) => c.write(`/t/big/${n}`, 'v')));
  const got = await c.directory('/t/big');
  assert.is(got.length, 400);
  assert.equal([...got].sort(), [...names].sort());
  assert.equal(await c.transaction((tx) => tx.directory('/t/big')).then((d) => d.length), 400);
  await c.rm('/t/big');
});

test('permissions round-trip; another domain is refused', async () => {
  await c.write('/t/p/k', 'v');
  await c.setPermissions('/t/p', [{ domid: 0, access: 'n' }, { domid: 5, access: 'r' }]);
  assert.equal(await c.getPermissions('/t/p'), [{ domid: 0, access: 'n' }, { domid: 5, access: 'r' }]);
  await rejects(c.setPermissions('/t/p', []), 'EINVAL');
  await rejects(c.setPermissions('/t/p', [{ domid: 0, access: 'x' as 'r' }]), 'EINVAL');
  await rejects(c.getPermissions('/t/nope'), 'ENOENT');
});

test('oversize payloads are refused locally and the connection survives', async () => {
  const e = await rejects(c.write('/t/big', 'x'.repeat(5000)), 'E2BIG');
  assert.match(e.message, /4096/);
  await c.write('/t/max', 'y'.repeat(4096 - '/t/max'.length - 1));
  assert.is((await c.read('/t/max')).length, 4096 - 7);
  await rejects(c.read(''), 'EINVAL');
  assert.is(await c.tryRead('/t/a'), undefined, 'the connection still answers');
});

test('many concurrent requests are matched by req_id', async () => {
  const n = 200;
  await Promise.all(Array.from({ length: n }, (_, i) => c.write(`/t/many/${i}`, String(i * 3))));
  const vals = await Promise.all(Array.from({ length: n }, (_, i) => c.read(`/t/many/${i}`)));
  assert.equal(vals, Array.from({ length: n }, (_, i) => String(i * 3)));
});

test('watch: initial event, then descendants, until closed', async () => {
  const seen: string[] = [];
  const w = await c.watch('/t/w', (p) => seen.push(p));
  await until('initial event', () => seen.length >= 1);
  assert.is(seen[0], '/t/w', 'the initial event names the watched path even when it does not exist');
  await c.write('/t/w/x/y', '1');
  await until('descendant event', () => seen.includes('/t/w/x/y'));
  await c.write('/t/other', '1');
  await c.rm('/t/w');
  await until('rm event', () => seen.filter((p) => p === '/t/w').length >= 2);
  assert.not.ok(seen.includes('/t/other'));
  await w.close();
  const before = seen.length;
  await c.write('/t/w/z', '1');
  await c.read('/t/w/z');
  await sleep(30);
  assert.is(seen.length, before, 'no event after close()');
});

test('two watches on one path get separate tokens; a throwing handler does not break others', async () => {
  const a: string[] = [];
  const b: string[] = [];
  const wa = await c.watch('/t/two', () => { a.push('x'); throw new Error('handler bug'); });
  const wb = await c.watch('/t/two', (p) => b.push(p));
  await c.write('/t/two/k', 'v');
  await until('both fire', () => a.length >= 2 && b.includes('/t/two/k'));
  await wa.close();
  await wb.close();
});

test('@releaseDomain fires when a domain is released', async () => {
  let fired = 0;
  const w = await c.watch('@releaseDomain', () => fired++);
  await until('initial', () => fired === 1);
  await c.introduceDomain(9, 1234, 5);
  await c.releaseDomain(9);
  await until('release event', () => fired >= 2);
  await w.close();
});

test('transactions commit atomically and abort on error', async () => {
  await c.transaction(async (tx) => {
    await tx.write('/t/tx/a', '1');
    await tx.write('/t/tx/b', '2');
    assert.is(await c.tryRead('/t/tx/a'), undefined, 'invisible outside before commit');
  });
  assert.is(await c.read('/t/tx/b'), '2');
  let threw = false;
  try {
    await c.transaction(async (tx) => {
      await tx.write('/t/tx/c', '3');
      throw new Error('caller bug');
    });
  } catch (e) {
    threw = (e as Error).message === 'caller bug';
  }
  assert.ok(threw);
  assert.is(await c.tryRead('/t/tx/c'), undefined, 'aborted');
});

test('a conflicting transaction gets EAGAIN and is retried until it commits', async () => {
  const other = await connect();
  try {
    await c.write('/t/ctr', '0');
    let runs = 0;
    const result = await c.transaction(async (tx) => {
      runs++;
      const v = Number(await tx.read('/t/ctr'));
      if (runs === 1) await other.write('/t/ctr', '100');
      await tx.write('/t/ctr', String(v + 1));
      return v + 1;
    });
    assert.is(runs, 2, 'the first attempt conflicted');
    assert.is(result, 101);
    assert.is(await c.read('/t/ctr'), '101');
    // Many concurrent increments from two connections lose nothing.
    await c.write('/t/ctr', '0');
    const inc = (cl: XenStoreClient) => cl.transaction(async (tx) => {
      const v = Number(await tx.read('/t/ctr'));
      await tx.write('/t/ctr', String(v + 1));
    });
    await Promise.all([...Array.from({ length: 20 }, () => inc(c)), ...Array.from({ length: 20 }, () => inc(other))]);
    assert.is(await c.read('/t/ctr'), '40');
  } finally {
    other.close();
  }
});

test('xenstored restart: reconnect, watches re-registered with a new initial event, requests resume', async () => {
  const lines: string[] = [];
  const cl = await connectXenStore({ env: { XENSTORED_PATH: xs.socketPath }, log: (l) => lines.push(l) });
  try {
    const seen: string[] = [];
    await cl.watch('/r', (p) => seen.push(p));
    await until('initial', () => seen.length === 1);
    await xs.restart();
    // A request made while the daemon is down waits and then goes through.
    await cl.write('/r/after', 'yes');
    assert.is(await cl.read('/r/after'), 'yes');
    await until('re-registered initial event', () => seen.filter((p) => p === '/r').length >= 2);
    await until('event for the new write', () => seen.includes('/r/after'));
    assert.ok(lines.some((l) => /lost/.test(l)) && lines.some((l) => /reconnected/.test(l)), lines.join('\n'));
    // A transaction whose connection dies is run again on the new one.
    let runs = 0;
    await cl.transaction(async (tx) => {
      runs++;
      await tx.write('/r/tx', String(runs));
      if (runs === 1) await xs.restart();
    });
    assert.is(runs, 2);
    assert.is(await cl.read('/r/tx'), '2');
  } finally {
    cl.close();
  }
  // The shared client also survived both restarts.
  await c.write('/t/alive', '1');
  assert.is(await c.read('/t/alive'), '1');
});

test('a watch registered while xenstored is down is registered once it is back', async () => {
  const cl = await connect();
  try {
    await cl.write('/probe', '1');
    await xs.restart();
    const seen: string[] = [];
    const w = await cl.watch('/late', (p) => seen.push(p)); // queued until the reconnect
    await cl.write('/late/x', '1');
    await until('event', () => seen.includes('/late/x'));
    await w.close();
  } finally {
    cl.close();
  }
});

test('closing a watch while xenstored is down does not wait for it', async () => {
  const cl = await connect();
  try {
    const w = await cl.watch('/down', () => undefined);
    const w2 = await cl.watch('/down2', () => undefined);
    const closing = w2.close(); // in flight when the daemon dies
    await xs.restart();
    await w.close();
    await closing;
  } finally {
    cl.close();
  }
});

test('close() rejects outstanding requests with ECONNRESET and later ones too', async () => {
  const cl = await connect();
  const p = cl.read('/t/alive');
  cl.close();
  await rejects(p, 'ECONNRESET');
  await rejects(cl.write('/x', 'y'), 'ECONNRESET');
});

test('connection refused names the socket and says to start xenstored', async () => {
  const e = await rejects(connectXenStore({ env: { XENSTORED_PATH: `${xs.dir}/no-such-socket` } }), 'ENOENT');
  assert.match(e.message, /no-such-socket/);
  assert.match(e.message, /start it/);
});

test.run();
