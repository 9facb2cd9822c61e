// The simulated hypervisor in one process: ring mapping aliases guest memory, grant copy
// reports Xen's per-segment status, event channels mask a pending port until unmask.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimHypervisor, createSimPlatform } from '../../src/sim/platform';
import { socketPath } from '../../src/sim/wire';
import { GNTST, GrantCopyBatch } from '../../src/xen/grant-table';

import { rejects, tick } from './util';

function setup() {
  const hv = new SimHypervisor();
  const guest = hv.addGuest({ domid: 5, pages: 64, maxGrants: 128 });
  const platform = hv.platform();
  return { hv, guest, platform, done: () => { platform.close(); hv.close(); } };
}

test('mapRing gives the same bytes as the guest pages, contiguous over several pages', async () => {
  const { guest, platform, done } = setup();
  const first = guest.allocPages(4);
  const grefs = [0, 1, 2, 3].map((i) => guest.grant(first + i, false));
  const ring = await platform.grants.mapRing(5, grefs);
  assert.is(ring.buffer.byteLength, 4 * 4096);
  const backView = new Uint8Array(ring.buffer);
  guest.page(first + 2)[100] = 0xab;
  assert.is(backView[2 * 4096 + 100], 0xab, 'guest write visible to the backend');
  backView[3 * 4096 + 7] = 0xcd;
  assert.is(guest.page(first + 3)[7], 0xcd, 'backend write visible to the guest');
  // Refusals: a revoked grant, a read-only grant, non-consecutive pages.
  guest.endGrant(grefs[1]!);
  await rejects(() => platform.grants.mapRing(5, grefs));
  const ro = guest.grant(guest.allocPages(1), true);
  await rejects(() => platform.grants.mapRing(5, [ro]));
  const a = guest.grant(guest.allocPages(1), false);
  guest.allocPages(1);
  const b = guest.grant(guest.allocPages(1), false);
  await rejects(() => platform.grants.mapRing(5, [a, b]));
  await rejects(() => platform.grants.mapRing(99, [a]), /no simulated domain/);
  done();
});

test('grant copy: both directions and each GNTST status per segment', async () => {
  const { guest, platform, done } = setup();
  const rwPage = guest.allocPages(1);
  const roPage = guest.allocPages(1);
  const rw = guest.grant(rwPage, false);
  const ro = guest.grant(roPage, true);
  guest.page(roPage).fill(7);
  await platform.grants.mapRing(5, [rw]); // attaches the guest, as a device does first
  const pool = platform.grants.allocPool(8192);
  pool.fill(9, 0, 4096);
  const batch = new GrantCopyBatch(8);
  const toGuest = batch.add(true, 5, rw, 512, 1024, 0);
  const fromGuest = batch.add(false, 5, ro, 0, 4096, 4096);
  const badRef = batch.add(false, 5, 9999, 0, 512, 0);
  const roWrite = batch.add(true, 5, ro, 0, 512, 0);
  const crossing = batch.add(true, 5, rw, 3584, 1024, 0);
  const badDom = batch.add(true, 6, rw, 0, 512, 0);
  const revoked = guest.grant(guest.allocPages(1), false);
  guest.endGrant(revoked);
  const rev = batch.add(false, 5, revoked, 0, 512, 0);
  platform.grants.copy(batch, pool);
  assert.is(batch.status[toGuest], GNTST.okay);
  assert.is(batch.status[fromGuest], GNTST.okay);
  assert.is(batch.status[badRef], GNTST.bad_gntref);
  assert.is(batch.status[roWrite], GNTST.permission_denied);
  assert.is(batch.status[crossing], GNTST.bad_copy_arg);
  assert.is(batch.status[badDom], GNTST.bad_domain);
  assert.is(batch.status[rev], GNTST.bad_gntref);
  assert.is(guest.page(rwPage)[511], 0);
  assert.is(guest.page(rwPage)[512], 9);
  assert.is(guest.page(rwPage)[1535], 9);
  assert.is(guest.page(rwPage)[1536], 0);
  assert.is(pool[4096], 7);
  assert.is(pool[8191], 7);
  assert.is(guest.page(roPage)[0], 7, 'read-only page untouched');
  done();
});

test('event channels: bind, notify both ways, a pending port stays masked until unmask', async () => {
  const { guest, platform, done } = setup();
  const gport = guest.allocUnboundPort(0);
  let guestEvents = 0;
  guest.onEvent(gport, () => guestEvents++);
  const reports: number[][] = [];
  platform.evtchn.onPending((ports) => reports.push([...ports]));
  const local = await platform.evtchn.bindInterdomain(5, gport);
  assert.ok(guest.isBound(gport));
  await rejects(() => platform.evtchn.bindInterdomain(5, gport), /not unbound/, 'a bound port cannot be bound twice');
  await rejects(() => platform.evtchn.bindInterdomain(5, 77));

  guest.notify(gport);
  await tick();
  await tick();
  assert.equal(reports, [[local]]);
  guest.notify(gport);
  guest.notify(gport);
  await tick();
  await tick();
  assert.equal(reports, [[local]], 'no second report while masked');
  platform.evtchn.unmask(local);
  await tick();
  assert.equal(reports, [[local], [local]], 'the event that arrived while masked is reported at unmask');
  platform.evtchn.unmask(local);
  await tick();
  await tick();
  assert.is(reports.length, 2, 'nothing more pending');

  platform.evtchn.notify(local);
  platform.evtchn.notify(local);
  await tick();
  await tick();
  assert.is(guestEvents, 1, 'guest interrupts coalesce');

  platform.evtchn.simulateOverflow();
  await tick();
  assert.equal(reports[2], []);

  // A new backend (platform) can bind the port after the old one closed.
  platform.close();
  assert.not.ok(guest.isBound(gport));
  done();
});

test('a closed backend leaves the guest port unbound for the next backend', async () => {
  const hv = new SimHypervisor();
  const guest = hv.addGuest({ domid: 2, pages: 16, maxGrants: 32 });
  const p1 = hv.platform();
  const port = guest.allocUnboundPort(0);
  await p1.evtchn.bindInterdomain(2, port);
  p1.close();
  const p2 = hv.platform();
  const got: number[][] = [];
  p2.evtchn.onPending((ports) => got.push([...ports]));
  const local = await p2.evtchn.bindInterdomain(2, port);
  guest.notify(port);
  await tick();
  await tick();
  assert.equal(got, [[local]]);
  p2.close();
  hv.close();
});

test('across processes: a clear error when no guest listens, or the directory is unset or too long', async () => {
  const saved = process.env.AFSFILE_SIM_DIR;
  delete process.env.AFSFILE_SIM_DIR;
  try {
    assert.throws(() => createSimPlatform(), /AFSFILE_SIM_DIR/);
  } finally {
    if (saved !== undefined) process.env.AFSFILE_SIM_DIR = saved;
  }
  const p = createSimPlatform({ dir: '/nonexistent-afsfile-simdir' });
  await rejects(
    () => p.evtchn.bindInterdomain(3, 1),
    /simulated guest 3: cannot connect to \/nonexistent-afsfile-simdir\/dom3\.sock/,
  );
  await rejects(() => p.grants.mapRing(3, [8]), /cannot connect/);
  p.close();
  assert.throws(() => socketPath('/tmp/' + 'x'.repeat(120), 1), /unix socket path/);
});

test.run();
