// The crash-restart proof (test/proofs/crash-restart.ts), short: two devices, a few device
// process kills and one supervisor kill under the verified write+flush workload. The long run
// (100 kills) is `npm run proof:crash`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describe, runCrashRestart } from './crash-restart';

test('kill -9 of device processes and of the supervisor under verified I/O: no guest error, nothing flushed is lost',
  async () => {
  const seed = Date.now() % 1e9;
  const f = await runCrashRestart({
    devices: 2, kills: 4, supervisorKills: 1, seed, imageBytes: 8 << 20, gapMs: [100, 800],
    say: (l) => process.stdout.write(`${l}\n`),
  });
  process.stdout.write(`${describe(f)}\n`);
  assert.equal(f.guestErrors, [], `guest errors (seed ${seed})`);
  assert.equal(f.lost, [], `lost blocks (seed ${seed})`);
  assert.is(f.restartsSurvived, 4);
  assert.is(f.adopted, 2);
  assert.ok(f.writes > 100, `only ${f.writes} writes`);
});

test.run();
