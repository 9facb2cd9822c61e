// A guest keeping many requests in flight: its notifications often reach the device after a
// pump (one after a completion) has already taken the requests they announce. Those wakeups
// find an empty ring but are not spurious (requests were taken since the last one), so the
// XSA-332 back-off (storm.test.ts) never holds the port masked in a plain burst of I/O.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pattern } from '../helpers/pattern';
import { rig } from '../helpers/sim-rig';

test('a burst of I/O at queue depth 32 counts no spurious wakeups', async () => {
  const r = await rig({ domid: 7 });
  try {
    for (let round = 0; round < 5; round++) {
      const writes: Array<Promise<void>> = [];
      for (let i = 0; i < 64; i++) writes.push(r.front.write(i * 8, pattern(4096, round * 64 + i)));
      await Promise.all(writes);
      const reads: Array<Promise<Uint8Array>> = [];
      for (let i = 0; i < 64; i++) reads.push(r.front.read(i * 8, 4096));
      const got = await Promise.all(reads);
      for (let i = 0; i < 64; i++) assert.equal(got[i], pattern(4096, round * 64 + i));
    }
    const st = r.device.stats();
    process.stdout.write(`burst: ${st.events} wakeups, ${st.spuriousEvents} spurious\n`);
    assert.ok(st.events > 0);
    assert.is(st.spuriousEvents, 0, `spurious wakeups in a plain burst: ${st.spuriousEvents} of ${st.events}`);
  } finally {
    await r.close();
  }
});

test.run();
