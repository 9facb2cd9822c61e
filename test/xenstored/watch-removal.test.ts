// What a watch sees when a parent of its path is removed, on Debian's real xenstored and on the
// simulated store (which must behave the same, or tests over it miss what happens for real):
// a watch on a node that exists fires; a watch on a path that does not exist (yet) gets NO
// event; watches on or above the removed node fire.
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimStore } from '../../src/sim/xenstore';
import type { XenStore } from '../../src/xen/xenstore';
import { connectXenStore } from '../../src/xen/xenstore-client';
import { type Xenstored, startXenstored } from '../helpers/xenstored';

let xsd: Xenstored;

test.before(async () => {
  xsd = await startXenstored();
});
test.after(async () => {
  await xsd.stop();
});

/** Events (watch path <- event path) after `rm /w/dev` in one store, initial events left out. */
async function eventsOnRemoval(xs: XenStore): Promise<string[]> {
  await xs.write('/w/dev/state', '1');
  await xs.write('/w/dev/sub/key', 'x');
  const seen: string[] = [];
  const paths = ['/w/dev/state', '/w/dev/missing', '/w/dev/sub/missing', '/w/dev/sub', '/w/dev', '/w'];
  const watches = await Promise.all(paths.map((p) => xs.watch(p, (ev) => seen.push(`${p} <- ${ev}`))));
  await sleep(200);
  seen.length = 0;
  await xs.rm('/w/dev');
  await sleep(300);
  await Promise.all(watches.map((w) => w.close()));
  await xs.rm('/w');
  return seen.sort();
}

test('removal of a parent: the real xenstored and the simulated store fire the same watches', async () => {
  const real = await connectXenStore({ env: { XENSTORED_PATH: xsd.socketPath } });
  const fromReal = await eventsOnRemoval(real);
  real.close();
  const fromSim = await eventsOnRemoval(new SimStore().connect(0));
  assert.ok(
    !fromReal.some((e) => e.startsWith('/w/dev/missing ')),
    `real: no event for a missing key: ${fromReal.join(', ')}`,
  );
  assert.ok(
    fromReal.some((e) => e.startsWith('/w/dev/state ')),
    'real: an existing key fires',
  );
  assert.equal(fromSim, fromReal);
});

test.run();
