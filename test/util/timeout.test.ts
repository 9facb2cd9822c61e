// withTimeout (src/util/timeout.ts): p's outcome within the time, onTimeout's after it.
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withTimeout } from '../../src/util/timeout';

test('settles as p does when p is in time (value and rejection)', async () => {
  assert.is(await withTimeout(Promise.resolve(7), 1000, () => 0), 7);
  try {
    await withTimeout(Promise.reject(new Error('no')), 1000, () => 0);
    assert.unreachable('rejects');
  } catch (e) {
    assert.is((e as Error).message, 'no');
  }
});

test("late p: onTimeout's value, or its throw as the rejection; p keeps running", async () => {
  let finished = false;
  const slow = sleep(60).then(() => ((finished = true), 1));
  assert.is(await withTimeout(slow, 10, () => -1), -1);
  try {
    await withTimeout(sleep(60), 10, () => {
      throw new Error('late');
    });
    assert.unreachable('rejects');
  } catch (e) {
    assert.is((e as Error).message, 'late');
  }
  await slow;
  assert.ok(finished);
});

test.run();
