// Type=notify: the worker tells systemd it is ready (READY=1 on NOTIFY_SOCKET) once it watches
// XenStore, so `systemctl start afsfile` returns when an attach would be served. systemd is
// not running here: the socket is a unix datagram socket this test binds (through python3,
// since Node cannot open one), standing in for the one systemd gives the unit.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Toolstack } from '../../src/sim/toolstack';
import { connectXenStore } from '../../src/xen/xenstore-client';
import { EXE } from '../helpers/exe';
import { withTempDir } from '../helpers/temp';
import { until } from '../helpers/wait';
import { workerEnv } from '../helpers/worker';
import { startXenstored } from '../helpers/xenstored';

const RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    print(s.recv(4096).decode().replace("\\n", " "), flush=True)
`;

test('READY=1 reaches NOTIFY_SOCKET once the worker watches XenStore; a device added then is claimed', async () => {
  await withTempDir(async (dir) => {
    const sock = path.join(dir, 'notify.sock');
    let received = '';
    const rx: ChildProcess = spawn('/usr/bin/python3', ['-c', RECEIVER, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
    rx.stdout!.on('data', (d) => (received += d));
    const xs = await startXenstored();
    let worker: ChildProcess | undefined;
    const c = await connectXenStore({ env: { XENSTORED_PATH: xs.socketPath } });
    try {
      await until('receiver bound', () => received.includes('bound'), 5000);
      const env = workerEnv(xs.socketPath, path.join(dir, 'run'), { NOTIFY_SOCKET: sock });
      worker = spawn(EXE, ['worker', '--platform', 'sim'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      worker.stderr!.on('data', (d) => (err += d));
      await until('READY=1', () => /READY=1 STATUS=serving domain 0's block-afsfile devices/.test(received), 10_000)
        .catch((e: Error) => { throw new Error(`${e.message}\nreceived: ${received}\nworker: ${err}`); });
      assert.ok(err.includes('serving backend/vbd'), 'sent after the supervisor started watching');
      const ts = new Toolstack(c);
      const img = path.join(dir, 'a.img');
      fs.writeFileSync(img, Buffer.alloc(1 << 20));
      await ts.createDomain(3);
      const p = await ts.addVbd({ domid: 3, target: img });
      assert.ok(await ts.waitBackendState(p, 2, 5000), 'claimed (InitWait) right after readiness');
      assert.is(received.match(/READY=1/g)!.length, 1, 'once');
      assert.ok((await ts.removeVbd(p, { timeoutMs: 10_000 })).closed, 'the device process ends');
    } finally {
      if (worker && worker.exitCode === null) { const gone = new Promise((r) => worker!.once('exit', r)); worker.kill('SIGKILL'); await gone; }
      rx.kill('SIGKILL');
      c.close();
      await xs.stop();
    }
  }, 'afsfile-notify-');
});

test.run();
