// Many processes connecting to xenstored at once (a device host starting its disks after a
// worker restart) can find its listen backlog full: the connect fails with EAGAIN and is tried
// again. The real xenstored is stopped (SIGSTOP) so that it accepts nothing until SIGCONT.
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type XenStoreClient, connectXenStore } from '../../src/xen/xenstore-client';
import { type Xenstored, startXenstored } from '../helpers/xenstored';

let xs: Xenstored;

test.before(async () => {
  xs = await startXenstored();
});
test.after(async () => {
  try { process.kill(xs.pid, 'SIGCONT'); } catch { /* gone */ }
  await xs.stop();
});

/** A raw connection, resolved with its outcome (an errno name, or 'connected'). */
function raw(path: string): Promise<{ sock: net.Socket; outcome: string }> {
  return new Promise((resolve) => {
    const sock = net.connect(path);
    sock.once('connect', () => resolve({ sock, outcome: 'connected' }));
    sock.once('error', (e: NodeJS.ErrnoException) => resolve({ sock, outcome: e.code ?? e.message }));
  });
}

test('a connect that meets a full backlog (EAGAIN) is tried again until xenstored accepts', async () => {
  process.kill(xs.pid, 'SIGSTOP');
  const fill: net.Socket[] = [];
  let clients: XenStoreClient[] = [];
  try {
    // Fill the backlog: raw connects until one is refused with EAGAIN.
    let outcome = '';
    for (let i = 0; i < 1000 && outcome !== 'EAGAIN'; i++) {
      const r = await raw(xs.socketPath);
      fill.push(r.sock);
      outcome = r.outcome;
    }
    assert.is(outcome, 'EAGAIN', 'the backlog filled');
    const connecting = [1, 2, 3].map(() => connectXenStore({ env: { XENSTORED_PATH: xs.socketPath } }));
    await sleep(300);
    for (const s of fill) s.destroy();
    process.kill(xs.pid, 'SIGCONT');
    clients = await Promise.all(connecting);
    for (const [i, c] of clients.entries()) {
      await c.write(`/backlog/${i}`, 'x');
      assert.is(await c.read(`/backlog/${i}`), 'x', 'a working connection');
    }
  } finally {
    try { process.kill(xs.pid, 'SIGCONT'); } catch { /* gone */ }
    for (const s of fill) s.destroy();
    for (const c of clients) c.close();
  }
});

test.run();
