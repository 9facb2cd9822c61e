// The per-request split logged with DEBUG=afsfile:timing: wake → notify is this process,
// notify → next wake is the guest, Xen and the event's delivery. A fake clock and log.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RoundTripTiming, WINDOW } from '../../src/xen/linux/evtchn-timing';

function rig(enabled = true) {
  let now = 1000;
  const lines: string[] = [];
  const log = Object.assign((fmt: string, ...args: unknown[]) => {
    let i = 0;
    lines.push(fmt.replace(/%s/g, () => String(args[i++])));
  }, { enabled });
  const t = new RoundTripTiming('evtchn', log, () => now);
  return { t, lines, advance: (ms: number) => { now += ms; } };
}

test('QD1 round trips: 3 ms in the process, 1 ms outside, one line per window', () => {
  const r = rig();
  for (let i = 0; i < WINDOW + 1; i++) {
    r.t.wake();
    r.advance(3);
    r.t.notify();
    r.advance(1);
  }
  assert.is(r.lines.length, 1, 'a full window is one line');
  assert.match(r.lines[0], /^evtchn: wake->notify \(this process\) n=\d+ mean 3\.00 p10 3\.00 p50 3\.00 p90 3\.00 ms; notify->next wake \(guest, Xen, delivery\) n=\d+ mean 1\.00 p10 1\.00 p50 1\.00 p90 1\.00 ms$/);
  r.t.end();
  assert.is(r.lines.length, 2);
  const total = (re: RegExp) => r.lines.reduce((n, l) => n + Number(re.exec(l)?.[1] ?? 0), 0);
  assert.is(total(/this process\) n=(\d+)/), WINDOW + 1, 'every response counted once');
  assert.is(total(/delivery\) n=(\d+)/), WINDOW, 'every wake after a response counted once');
  r.t.end();
  assert.is(r.lines.length, 2, 'nothing left to say');
});

test('a wake with no response and a notify with no wake are not samples', () => {
  const r = rig();
  r.t.notify(); // before any wake: nothing to measure yet
  r.advance(5);
  r.t.wake(); // outside: 5
  r.advance(2);
  r.t.wake(); // a second kick before any response: not an outside sample
  r.advance(4);
  r.t.notify(); // this process: 4 (from the last wake)
  r.t.notify(); // a second notify for the same wake: not a sample
  r.t.end();
  assert.equal(r.lines, ['evtchn: wake->notify (this process) n=1 mean 4.00 p10 4.00 p50 4.00 p90 4.00 ms; notify->next wake (guest, Xen, delivery) n=1 mean 5.00 p10 5.00 p50 5.00 p90 5.00 ms']);
});

test('grant copies split wake->notify: before the first, in copies, after the last', () => {
  const r = rig();
  r.t.copyStart(); // no wake yet: ignored
  r.t.copyEnd();
  r.t.wake();
  r.advance(2); // the engine and the file read
  r.t.copyStart();
  r.advance(1);
  r.t.copyEnd();
  r.advance(0.5);
  r.t.copyStart();
  r.advance(1);
  r.t.copyEnd();
  r.advance(3); // publish and the file write
  r.t.notify();
  r.t.wake(); // a round trip with no copy adds nothing to the split
  r.advance(1);
  r.t.notify();
  r.t.end();
  assert.is(r.lines.length, 2);
  assert.match(r.lines[0], /this process\) n=2 /);
  assert.is(r.lines[1], 'evtchn: of which wake->first grant copy n=1 mean 2.00 p10 2.00 p50 2.00 p90 2.00 ms; '
    + 'grant copies n=1 mean 2.00 p10 2.00 p50 2.00 p90 2.00 ms; last copy->notify n=1 mean 3.00 p10 3.00 p50 3.00 p90 3.00 ms');
});

test('disabled without DEBUG=afsfile:timing', () => {
  assert.is(rig(false).t.enabled, false);
  assert.is(new RoundTripTiming('x').enabled, /afsfile:timing|afsfile:\*/.test(process.env.DEBUG ?? ''));
});

test.run();
