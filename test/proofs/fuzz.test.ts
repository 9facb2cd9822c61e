// The engine fuzzer (test/proofs/fuzz.ts), short: a few seconds of hostile rings. The long run
// (10^6 requests and more) is `npm run fuzz -- --seconds 180 [--seed S]`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeFuzz, runFuzz } from './fuzz';
import { describeXenStoreFuzz, runXenStoreFuzz } from './fuzz-xenstore';

test('hostile rings: no exception escapes, every request of a sane ring answered once, no I/O outside the image',
  async () => {
  const seed = Date.now() % 1e9;
  const t0 = Date.now();
  const f = await runFuzz({ seconds: 4, seed, say: () => undefined, memoryBudgetMiB: 768 });
  process.stdout.write(`${describeFuzz(f, (Date.now() - t0) / 1000)}\n`);
  assert.equal(f.failures, [], `replay with: npm run fuzz -- --seed ${seed}`);
  assert.ok(f.requests > 5000 && f.indirect > 1000 && f.boundary > 1000, 'the fuzzer reached the paths it aims at');
});

test('hostile XenStore values and state flapping: a verdict every time, no crash, removal works', async () => {
  const seed = Date.now() % 1e9;
  const t0 = Date.now();
  const f = await runXenStoreFuzz({ seconds: 3, seed, minRounds: 40 });
  process.stdout.write(`${describeXenStoreFuzz(f, (Date.now() - t0) / 1000)}\n`);
  assert.equal(f.failures, [], `replay with: npm run fuzz -- --seed ${seed}`);
  assert.ok(f.rounds >= 40 && f.connected > 0 && f.refused > 0, 'both verdicts reached');
});

test.run();
