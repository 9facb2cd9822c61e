// A frontend cycling through bad states (issue 19 defect 11): its lines are rate-limited, the
// first few shown, then one "suppressed N" line, so a hostile guest cannot flood the journal.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LogThrottle } from '../../src/worker/device/log-throttle';
import { rig } from '../helpers/sim-rig';
import { until } from '../helpers/wait';

test('the throttle: a burst per interval, then a count of what was held back', () => {
  let t = 0;
  const out: string[] = [];
  const th = new LogThrottle({ burst: 3, intervalMs: 10_000, emit: (l) => out.push(l), subject: 'dev', now: () => t });
  for (let i = 0; i < 10; i++) th.line(`bad ${i}`);
  assert.equal(out, ['bad 0', 'bad 1', 'bad 2']);
  t = 10_000;
  th.line('bad 10');
  assert.equal(out.slice(3), ['dev: suppressed 7 more such lines (at most 3 per 10 s)', 'bad 10']);
  th.line('bad 11');
  th.summarise();
  assert.is(out.length, 6, 'nothing held back: nothing said');
  t = 30_000;
  for (let i = 0; i < 5; i++) th.line(`x ${i}`);
  th.summarise();
  assert.is(out.at(-1), 'dev: suppressed 2 more such lines (at most 3 per 10 s)');
});

test('the count is said at the end of the interval when the lines stop', async () => {
  const out: string[] = [];
  const th = new LogThrottle({ burst: 1, intervalMs: 200, emit: (l) => out.push(l), subject: 'dev' });
  th.line('a');
  th.line('b');
  await until('the summary', () => out.length === 2, 5000);
  assert.match(out[1]!, /suppressed 1 more such line \(/);
});

test('a frontend cycling through a bad ring-ref 40 times: 4 lines shown, then "suppressed"', async () => {
  const r = await rig({ connect: false, device: { guestLog: { burst: 4, intervalMs: 3_600_000 } } });
  try {
    const gx = r.store.connect(5);
    const fe = r.paths.frontend;
    const be = r.paths.backend;
    const port = r.guest.allocUnboundPort(0);
    await gx.write(`${fe}/event-channel`, String(port));
    await gx.write(`${fe}/protocol`, 'x86_64-abi');
    for (let i = 0; i < 40; i++) {
      // Linux blkfront's way back after an error: Closed, Initialising (the backend answers
      // InitWait), then its keys and Initialised again.
      await gx.write(`${fe}/ring-ref`, `bad${i}`);
      await gx.write(`${fe}/state`, '3');
      await until(`Closing ${i}`, async () => (await r.dom0.read(`${be}/state`)) === '5', 3000);
      await gx.write(`${fe}/state`, '6');
      await until(`Closed ${i}`, async () => (await r.dom0.read(`${be}/state`)) === '6', 3000);
      await gx.write(`${fe}/state`, '1');
      await until(`InitWait ${i}`, async () => (await r.dom0.read(`${be}/state`)) === '2', 3000);
    }
    assert.match((await r.dom0.tryRead(`${be}/afsfile-error`)) ?? '', /ring-ref is not a number/,
      'every cycle still reported in XenStore');
    const bad = r.warnings.filter((w) => /ring-ref is not a number/.test(w));
    assert.is(bad.length, 4, r.warnings.join('\n'));
    assert.is(r.warnings.filter((w) => /suppressed/.test(w)).length, 0, 'the count waits for the interval\'s end');
    const res = await r.toolstack.removeVbd(r.paths, { timeoutMs: 3000 });
    assert.ok(res.closed);
    await until('the summary at removal', () => r.warnings.some((w) => /suppressed 36 more such lines/.test(w)), 3000);
  } finally {
    await r.close();
  }
});

test.run();
