// The sim across processes (DESIGN.md "Platform"): this process is the guest (memory in a
// /dev/shm file, event channels on a unix socket, the XenStore side of the handshake played
// here), a child process is the backend (createSimPlatform from AFSFILE_SIM_DIR, the real
// engine and image). Verified I/O across it; the backend killed mid-I/O; a new backend
// re-attaches to the live ring and finishes what was in flight.
import { setTimeout as sleep } from 'node:timers/promises';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimBlkfront } from '../../src/sim/blkfront';
import { SimGuest } from '../../src/sim/guest';
import { Toolstack, waitFor } from '../../src/sim/toolstack';
import { SimStore } from '../../src/sim/xenstore';
import { pattern } from '../helpers/pattern';
import { until } from '../helpers/wait';

const CHILD = path.join(__dirname, 'fixtures/backend-child.js');
const children = new Set<ChildProcess>();

function startBackend(simDir: string, args: object): Promise<{ child: ChildProcess; attached: string }> {
  const child = spawn(process.execPath, [CHILD, JSON.stringify(args)], { env: { ...process.env, AFSFILE_SIM_DIR: simDir }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('ready\n')) resolve({ child, attached: out.split('\n')[0]! });
    });
    child.on('exit', (code) => reject(new Error(`backend child exited ${code}: ${err}`)));
  });
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

test('verified I/O across processes; backend killed mid-I/O; a new backend re-attaches to the live ring', async () => {
  const simDir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'afsfile-simdir-'));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'afsfile-xproc-'));
  const image = path.join(work, 'disk.img');
  fs.writeFileSync(image, '');
  fs.truncateSync(image, 16 * 1024 * 1024);
  const domid = 9;
  const guest = new SimGuest({ domid, dir: simDir, pages: 2048 });
  await guest.listen();
  assert.ok(fs.existsSync(path.join(simDir, `dom${domid}.sock`)));
  assert.ok(fs.existsSync(path.join(simDir, `dom${domid}.mem`)));

  // XenStore side of the handshake, played here for the backend in the child.
  const store = new SimStore();
  const dom0 = store.connect(0);
  const ts = new Toolstack(dom0);
  const vbd = await ts.addVbd({ domid, target: image });
  const b = vbd.backend;
  await dom0.write(`${b}/feature-max-indirect-segments`, '256');
  await dom0.write(`${b}/max-ring-page-order`, '0');
  await dom0.write(`${b}/state`, '2');
  const front = new SimBlkfront({ xs: store.connect(domid), guest, devid: vbd.devid, maxIndirectSegments: 64, queueDepth: 16 });
  const connecting = front.connect();
  assert.ok(await waitFor(dom0, `${vbd.frontend}/state`, (v) => v === '3', 5000));
  const args = {
    domid,
    grefs: [Number(await dom0.read(`${vbd.frontend}/ring-ref`))],
    port: Number(await dom0.read(`${vbd.frontend}/event-channel`)),
    image,
    protocol: await dom0.read(`${vbd.frontend}/protocol`),
    delayMs: 0,
  };
  let backend = await startBackend(simDir, args);
  assert.is(backend.attached, 'attached rsp_prod=0 req_prod=0');
  await dom0.transaction(async (t) => {
    await t.write(`${b}/sectors`, String(32768));
    await t.write(`${b}/sector-size`, '512');
    await t.write(`${b}/info`, '0');
    await t.write(`${b}/feature-flush-cache`, '1');
    await t.write(`${b}/state`, '4');
  });
  await connecting;
  assert.is(front.info.indirectSegments, 64);

  try {
    // Verified I/O through the other process.
    for (let i = 0; i < 16; i++) await front.write(i * 300, pattern(65536 + i * 512, i));
    for (let i = 0; i < 16; i++) assert.equal(await front.read(i * 300, 65536 + i * 512), pattern(65536 + i * 512, i));
    await front.flush();

    // A slow backend, killed with requests taken and unanswered.
    await kill(backend.child);
    backend = await startBackend(simDir, { ...args, delayMs: 300 });
    const ring = front.raw.ring();
    assert.match(backend.attached, /^attached rsp_prod=(\d+) req_prod=\1$/, 're-attached at the shared rsp_prod');
    const pending = Array.from({ length: 8 }, (_, i) => front.write(10_000 + i * 64, pattern(32768, 50 + i)));
    await until('requests on the ring', () => ring.reqProd !== ring.rspProd, 2000);
    await sleep(100);
    assert.ok(ring.reqProd - ring.rspProd > 0, 'requests in flight when the backend dies');
    await kill(backend.child);
    // The child's exit and its socket's close reach this process as separate events.
    await until('the guest port unbound with the dead backend', () => !guest.isBound(args.port), 2000);
    const beforeRsp = ring.rspProd;
    // The guest is unharmed: its memory and ring are intact, nothing was answered wrongly.
    assert.ok(ring.reqProd - beforeRsp > 0);

    backend = await startBackend(simDir, args);
    assert.match(backend.attached, new RegExp(`^attached rsp_prod=${beforeRsp} req_prod=${ring.reqProd}$`));
    await Promise.all(pending);
    for (let i = 0; i < 8; i++) assert.equal(await front.read(10_000 + i * 64, 32768), pattern(32768, 50 + i));
    for (let i = 0; i < 16; i++) assert.equal(await front.read(i * 300, 65536 + i * 512), pattern(65536 + i * 512, i));
    await front.flush();
    const disk = fs.readFileSync(image);
    for (let i = 0; i < 8; i++) assert.ok(Buffer.from(pattern(32768, 50 + i)).equals(disk.subarray((10_000 + i * 64) * 512, (10_000 + i * 64) * 512 + 32768)), `image holds write ${i}`);
  } finally {
    for (const c of [...children]) await kill(c);
    guest.close();
    fs.rmSync(simDir, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
});

test.run();
