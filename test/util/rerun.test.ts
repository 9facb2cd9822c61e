// Rerun (src/util/rerun.ts): requests during a pass become exactly one more pass; stop, errors
// and idle as Device.poke, the supervisor and waitForKey rely on.
import { setImmediate as turn } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rerun } from '../../src/util/rerun';

/** A pass that waits until released, counting how often it ran. */
function gated() {
  let release: () => void = () => undefined;
  const s = { runs: 0, open: () => release() };
  const pass = async (): Promise<void> => {
    s.runs++;
    await new Promise<void>((r) => (release = r));
  };
  return { s, pass };
}

test('many requests while a pass runs give exactly one more pass', async () => {
  const { s, pass } = gated();
  const r = new Rerun(pass);
  r.request();
  assert.is(s.runs, 1, 'the first pass starts at once');
  for (let i = 0; i < 5; i++) r.request();
  s.open();
  await turn();
  assert.is(s.runs, 2, 'one more pass for the five requests');
  assert.ok(r.running);
  s.open();
  await r.idle();
  assert.is(s.runs, 2);
  assert.not.ok(r.running);
  r.request();
  assert.is(s.runs, 3, 'idle again: a request starts a pass');
  s.open();
  await r.idle();
});

test('stop ends the run even when another pass was asked for; onIdle is called', async () => {
  const { s, pass } = gated();
  let stopped = false;
  let idles = 0;
  const r = new Rerun(pass, { stop: () => stopped, onIdle: () => idles++ });
  r.request();
  r.request();
  stopped = true;
  s.open();
  await r.idle();
  assert.is(s.runs, 1);
  assert.is(idles, 1);
  assert.not.ok(r.running);
});

test('a pass that throws ends the run and reaches onError; idle() does not reject', async () => {
  const errors: unknown[] = [];
  let runs = 0;
  const r = new Rerun(async () => {
    runs++;
    await turn();
    throw new Error('boom');
  }, { onError: (e) => errors.push(e) });
  r.request();
  r.request();
  await r.idle();
  assert.is(runs, 1, 'no further pass after the error');
  assert.is((errors[0] as Error).message, 'boom');
  r.request();
  await r.idle();
  assert.is(runs, 2, 'the next request runs again');
});

test.run();
