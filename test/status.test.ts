// `afsfile status` from status files alone (no worker: a worker.json whose pid is this test's):
// the table, DOMID filter, exit status on a failed device, the versioned JSON shape, malformed
// files skipped (never a crash), and status files that are not world-readable.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeStatus } from '../src/worker/status-file';
import { ago } from '../src/worker/status-command';
import { devidToVdev } from '../src/xen/vdev';
import { run } from './helpers/exe';
import { withTempDir } from './helpers/temp';

const envFor = (runDir: string): NodeJS.ProcessEnv =>
  ({ PATH: process.env.PATH, AFSFILE_CONFIG: '/dev/null', AFSFILE_RUN_DIR: runDir,
    XENSTORED_PATH: path.join(runDir, 'none') });
const status = (runDir: string, ...args: string[]) => run(['status', ...args], { env: envFor(runDir) });

function worker(runDir: string, devices: unknown): void {
  fs.mkdirSync(path.join(runDir, 'status'), { recursive: true, mode: 0o750 });
  const body = { schema: 1, pid: process.pid, started: 'now', xenstore: '/x', devices };
  fs.writeFileSync(path.join(runDir, 'status/worker.json'), JSON.stringify(body));
}

test('vdev names and "ago"', () => {
  assert.is(devidToVdev(51712), 'xvda');
  assert.is(devidToVdev(51728), 'xvdb');
  assert.is(devidToVdev(51713), 'xvda1');
  assert.is(devidToVdev(268441856), 'xvdz');
  assert.is(devidToVdev(12345), '12345');
  assert.is(ago(new Date(1_000_000 - 3000).toISOString(), 1_000_000), '3 s ago');
  assert.is(ago(new Date(1_000_000 - 600_000).toISOString(), 1_000_000), '10 min ago');
});

test('an AFS image lock: when the lease was last taken', () => {
  withTempDir((dir) => {
    const runDir = path.join(dir, 'run');
    worker(runDir, [
      { backend: '/local/domain/0/backend/vbd/7/51712', domid: 7, devid: 51712, image: '/afs/c/a.img', writable: true,
        phase: 'running', restarts: 0 },
      { backend: '/local/domain/0/backend/vbd/8/51712', domid: 8, devid: 51712, image: '/srv/b.img', writable: true,
        phase: 'running', restarts: 0 },
      { backend: '/local/domain/0/backend/vbd/9/51712', domid: 9, devid: 51712, image: '/afs/c/o.img', writable: true,
        phase: 'running', restarts: 0 },
    ]);
    const dev = (domid: number, image: string, reach: string, keeper?: number) => writeStatus(runDir,
      `dev-${domid}-51712`, {
        backend: `/local/domain/0/backend/vbd/${domid}/51712`, domid, devid: 51712, image, readOnly: false,
        state: 'Connected', inFlight: 0, requests: { read: 0, write: 0, flush: 0, barrier: 0, discard: 0, indirect: 0 },
        lock: {
          state: 'held', mode: 'exclusive', reach, fd: 9, since: new Date(Date.now() - 40_000).toISOString(), keeper,
        },
      });
    dev(7, '/afs/c/a.img', 'afs');
    dev(8, '/srv/b.img', 'local');
    dev(9, '/afs/c/o.img', 'afs', 4242);
    const r = status(runDir);
    assert.match(r.stdout, /\n7 +xvda .* ex held +\/afs\/c\/a\.img\n/);
    assert.match(r.stdout,
      /\n  7\/xvda: image lock: an AFS lease, taken 4\d s ago \(extended by the client: kAFS with the key/);
    assert.not.match(r.stdout, /8\/xvda: image lock/, 'a local lock is no lease');
    assert.match(r.stdout,
      /\n  9\/xvda: image lock: an AFS lease, taken 4\d s ago \(held by its lock keeper, process 4242;/);
    const json = status(runDir, '--json');
    type Devices = { devices: { domid: number; lock: { keeper: number | null } }[] };
    const { devices } = JSON.parse(json.stdout) as Devices;
    assert.equal(devices.map((d) => [d.domid, d.lock.keeper]).sort(), [[7, null], [8, null], [9, 4242]]);
  });
});

test('table like xl block-list, DOMID filter, exit 1 with a failed device, one JSON shape', () => {
  withTempDir((dir) => {
    const runDir = path.join(dir, 'run');
    worker(runDir, [
      { backend: '/local/domain/0/backend/vbd/7/51712', domid: 7, devid: 51712, image: '/srv/a.img', writable: true,
        phase: 'running', restarts: 1 },
      { backend: '/local/domain/0/backend/vbd/9/51728', domid: 9, devid: 51728, image: '/srv/b.img', writable: false,
        phase: 'failed', restarts: 5, message: 'gave up after 5 restarts' },
    ]);
    writeStatus(runDir, 'dev-7-51712', {
      backend: '/local/domain/0/backend/vbd/7/51712', domid: 7, devid: 51712, image: '/srv/a.img', readOnly: false,
      state: 'Connected', inFlight: 2, requests: { read: 10, write: 4, flush: 1, barrier: 0, discard: 0, indirect: 3 },
      bytesRead: 40960, bytesWritten: 8192, ioErrors: 0,
      lastFsync: new Date(Date.now() - 3000).toISOString(),
      latency: { boundsMs: [0.1, 1], counts: [5, 9, 1], sumMs: 7.5 },
      ioPath: 'thread pool (io_uring_setup: EPERM)', stalls: { slot: 12, memory: 3 }, held: 2,
    });
    const st = fs.statSync(path.join(runDir, 'status/dev-7-51712.json'));
    assert.is(st.mode & 0o007, 0, 'not world-readable');
    assert.is(fs.statSync(path.join(runDir, 'status')).mode & 0o007, 0);

    let r = status(runDir);
    assert.is(r.status, 1, 'a device failed');
    const lines = r.stdout.split('\n');
    assert.match(lines[1]!,
      /^Domain +Vdev +Mode +State +Reads +Writes +InFlight +Errors +Restarts +LastFsync +Lock +Image$/);
    assert.match(lines[2]!, /^7 +xvda +w +Connected +10 +4 +2 +0 +1 +3 s ago +- +\/srv\/a\.img$/);
    assert.match(lines[3]!, /^9 +xvdb +r +failed +0 +0 +0 +0 +5 +- +- +\/srv\/b\.img$/);
    assert.match(r.stdout, /\n  9\/xvdb: gave up after 5 restarts\n/);
    assert.match(r.stdout, /\n  7\/xvda: image I\/O through the thread pool \(io_uring_setup: EPERM\)\n/);
    assert.match(r.stdout,
      /\n  7\/xvda: budget stalls: 12 request\(s\) waited for a free slot \(max-requests\), 3 for buffer memory/);
    assert.match(r.stdout, /\n  7\/xvda: 2 request\(s\) held: a transient image error is being retried/);
    assert.not.match(r.stdout, /9\/xvdb: budget stalls/, 'no line without stalls');

    r = status(runDir, '7');
    assert.is(r.status, 0, 'the failed device is not domain 7\'s');
    assert.not.match(r.stdout, /xvdb/);
    assert.is(status(runDir, 'seven').status, 2);

    type Report = { schema: number; devices: Array<Record<string, unknown>> };
    const j = JSON.parse(status(runDir, '--json').stdout) as Report;
    assert.is(j.schema, 1);
    const shape = Object.keys(j.devices[0]!).sort();
    assert.equal(j.devices.map((d) => Object.keys(d).sort()), [shape, shape], 'one shape for every device');
    assert.equal(j.devices[0]!.requests, { read: 10, write: 4, flush: 1, discard: 0, indirect: 3 });
    assert.equal(j.devices[0]!.sectors, { read: 80, write: 16 });
    assert.equal(j.devices[0]!.latency, { boundsMs: [0.1, 1], counts: [5, 9, 1], sumMs: 7.5 });
    assert.equal(j.devices[0]!.stalls, { slot: 12, memory: 3 });
    assert.is(j.devices[0]!.held, 2);
    assert.equal(j.devices[1]!.stalls, { slot: 0, memory: 0 });
    assert.is(j.devices[0]!.ioPath, 'thread pool (io_uring_setup: EPERM)');
    assert.is(j.devices[1]!.ioPath, null, 'no device process: not known');
  });
});

test('malformed status files are skipped with a line on stderr, never a crash', () => {
  withTempDir((dir) => {
    const runDir = path.join(dir, 'run');
    worker(runDir, { not: 'a list' });
    const bad = [['dev-1-51712.json', 'null'], ['dev-2-51712.json', '[1,2]'],
      ['dev-3-51712.json', '{"domid": "x", "requests": 5, "errors": {}}'], ['renew.json', '{trunc']];
    for (const [name, text] of bad) {
      fs.writeFileSync(path.join(runDir, 'status', name), text);
    }
    const r = status(runDir);
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stderr, /skipped status file dev-1-51712\.json: not a JSON object/);
    assert.match(r.stderr, /skipped status file renew\.json: /);
    assert.match(r.stderr, /worker\.json: "devices" is not a list/);
    assert.not.match(r.stderr, /internal error|TypeError/);
    assert.is(status(runDir, '--json').status, 0);
  });
});

test('a run dir others can write is refused by the worker and flagged by status', () => {
  withTempDir((dir) => {
    const runDir = path.join(dir, 'run');
    fs.mkdirSync(runDir, { mode: 0o777 });
    fs.chmodSync(runDir, 0o777);
    const w = run(['worker', '--platform', 'sim'], { env: envFor(runDir) });
    assert.is(w.status, 1);
    assert.match(w.stderr, /refusing run dir: .*run is writable by every user \(mode 777\)/);
    assert.match(status(runDir).stderr, /warning: .* is writable by every user/);
    fs.chmodSync(runDir, 0o750);
    fs.chownSync(runDir, 65534, 65534);
    assert.match(status(runDir).stderr, /belongs to uid 65534/);
  });
});

test.run();
