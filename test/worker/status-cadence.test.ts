// The status file's cadence: written on change, at most once per interval while the device is
// active, once more with the final figures, then nothing while idle.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { StatusCadence } from '../../src/worker/status-cadence';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('idle: nothing written; a burst of changes: one write per interval, the last with the final figures', async () => {
  let figure = 0;
  let active = false;
  const writes: number[] = [];
  const c = new StatusCadence(() => (writes.push(figure), String(figure)), () => active, 40);
  c.writeNow();
  assert.equal(writes, [0]);
  await sleep(150);
  assert.equal(writes, [0], 'idle: no rewrite');
  active = true;
  for (let i = 0; i < 10; i++) {
    figure++;
    c.changed();
    await sleep(10);
  }
  // ~100 ms of activity at a 40 ms interval: a few writes, not one per change.
  assert.ok(writes.length >= 2 && writes.length <= 5, `writes ${JSON.stringify(writes)}`);
  active = false;
  figure = 42;
  await sleep(200);
  assert.is(writes[writes.length - 1], 42, 'the final figures written after the burst');
  const n = writes.length;
  await sleep(150);
  assert.is(writes.length, n, 'then quiet');
  c.close();
});

test('a change right after a write waits for the interval; close() cancels what is pending', async () => {
  const writes: number[] = [];
  const t0 = performance.now();
  const c = new StatusCadence(() => (writes.push(performance.now() - t0), 'x'), () => false, 60);
  c.writeNow();
  c.changed();
  await sleep(30);
  assert.is(writes.length, 1, 'not before the interval');
  await sleep(80);
  assert.is(writes.length, 2);
  assert.ok(writes[1]! >= 55, `second write at ${writes[1]} ms`);
  c.changed();
  c.close();
  await sleep(100);
  assert.is(writes.length, 2, 'closed: nothing more');
});

test.run();
