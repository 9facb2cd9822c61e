// The node_exporter textfile from status files alone: parsed with a strict reader of the text
// format, per device (requests, bytes, errors, held, stalls, latency histogram) and per identity
// (ticket and token expiry); odd label values escaped; rewritten only on change, atomically;
// afsfile_worker_up 0 when the worker stops.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MetricsWriter } from '../src/worker/metrics';
import { identityStatusName } from '../src/renew/status';
import { writeStatus } from '../src/worker/status-file';
import { parseProm } from './helpers/prom';
import { withTempDir } from './helpers/temp';

const BE = '/local/domain/0/backend/vbd3/7/51712';

function fixture(runDir: string, image = '/srv/a "b"\\c.img'): void {
  fs.mkdirSync(path.join(runDir, 'status'), { recursive: true, mode: 0o750 });
  fs.writeFileSync(path.join(runDir, 'status/worker.json'), JSON.stringify({
    schema: 1, pid: process.pid, devices: [
      { backend: BE, domid: 7, devid: 51712, image, writable: true, phase: 'running', restarts: 2 },
      { backend: '/local/domain/0/backend/vbd/9/51728', domid: 9, devid: 51728, image: '/srv/b.img', writable: false,
        phase: 'failed', restarts: 5, message: 'gave up' },
    ],
  }));
  writeStatus(runDir, 'dev-7-51712', {
    backend: BE, domid: 7, devid: 51712, image, readOnly: false, state: 'Connected', inFlight: 3, held: 1,
    requests: { read: 10, write: 4, flush: 1, barrier: 1, discard: 2, indirect: 3 },
    bytesRead: 40960, bytesWritten: 8192,
    ioErrors: 1, lastFsync: '2026-01-02T03:04:05.000Z', stalls: { slot: 12, memory: 3 },
    latency: { boundsMs: [0.1, 1, 10], counts: [5, 9, 1, 2], sumMs: 250 }, identity: 'dom7',
  });
  fs.writeFileSync(path.join(runDir, 'status/renew.json'), JSON.stringify({
    pid: process.pid, managed: true, principal: 'afsfile/dom0@EXAMPLE.ORG', ticketExpires: '2026-01-02T13:00:00.000Z',
    tokenExpires: { 'example.org': '2026-01-02T12:00:00Z', 'old.org': 'expired', 'kafs.org': 'present' },
    failures: 0, renewals: 4, lastSuccess: '2026-01-02T03:00:00.000Z', updated: 'x',
  }));
  fs.writeFileSync(path.join(runDir, 'status', identityStatusName('dom7')), JSON.stringify({
    pid: 999_999_999, managed: true, principal: 'guest7@EXAMPLE.ORG', ticketExpires: null, tokenExpires: null,
    failures: 3, renewals: 0, lastSuccess: null, updated: 'x',
  }));
}

test('every family parses; per device and per identity figures', () => {
  withTempDir((dir) => {
    const runDir = path.join(dir, 'run');
    fixture(runDir);
    const file = path.join(dir, 'afsfile.prom');
    new MetricsWriter(runDir, file, (l) => assert.unreachable(l)).update();
    const text = fs.readFileSync(file, 'utf8');
    const p = parseProm(text);
    const dev = { kind: 'vbd3', domid: '7', vdev: 'xvda', identity: 'dom7' };
    assert.is(p.get('afsfile_worker_up'), 1);
    assert.is(p.get('afsfile_device_info', dev), 1);
    assert.is(p.samples.find((s) => s.name === 'afsfile_device_info' && s.labels.domid === '7')!.labels.image,
      '/srv/a "b"\\c.img', 'quotes and backslashes survive escaping');
    assert.is(p.get('afsfile_device_requests_total', { ...dev, op: 'read' }), 10);
    assert.is(p.get('afsfile_device_requests_total', { ...dev, op: 'flush' }), 2, 'flush + barrier');
    assert.is(p.get('afsfile_device_requests_total', { ...dev, op: 'discard' }), 2);
    assert.is(p.get('afsfile_device_bytes_total', { ...dev, direction: 'read' }), 40960);
    assert.is(p.get('afsfile_device_bytes_total', { ...dev, direction: 'write' }), 8192);
    assert.is(p.get('afsfile_device_errors_total', dev), 1);
    assert.is(p.get('afsfile_device_in_flight_requests', dev), 3);
    assert.is(p.get('afsfile_device_held_requests', dev), 1);
    assert.is(p.get('afsfile_device_budget_stalls_total', { ...dev, budget: 'slot' }), 12);
    assert.is(p.get('afsfile_device_budget_stalls_total', { ...dev, budget: 'memory' }), 3);
    assert.is(p.get('afsfile_device_restarts_total', dev), 2);
    assert.is(p.get('afsfile_device_last_fsync_timestamp_seconds', dev), Date.parse('2026-01-02T03:04:05Z') / 1000);
    assert.is(p.get('afsfile_device_up', dev), 1, 'its pid (this test) is alive');
    // The failed device, known only to the supervisor: the host's identity, no process.
    const dev9 = { kind: 'vbd', domid: '9', vdev: 'xvdb', identity: 'host' };
    assert.is(p.get('afsfile_device_failed', dev9), 1);
    assert.is(p.get('afsfile_device_up', dev9), 0);
    assert.is(p.get('afsfile_device_restarts_total', dev9), 5);
    // Histogram: cumulative buckets in seconds, +Inf = count, the sum in seconds.
    assert.is(p.types.get('afsfile_device_request_duration_seconds'), 'histogram');
    const b = (le: string) => p.get('afsfile_device_request_duration_seconds_bucket', { ...dev, le });
    assert.equal([b('0.0001'), b('0.001'), b('0.01'), b('+Inf')], [5, 14, 15, 17]);
    assert.is(p.get('afsfile_device_request_duration_seconds_count', dev), 17);
    assert.is(p.get('afsfile_device_request_duration_seconds_sum', dev), 0.25);
    // Identities: the host's renew (tokens per cell; expired 0; kAFS's "present" has no expiry).
    assert.is(p.get('afsfile_renew_up', { identity: 'host' }), 1);
    assert.is(p.get('afsfile_renew_up', { identity: 'dom7' }), 0, 'pid gone');
    const host = { identity: 'host', principal: 'afsfile/dom0@EXAMPLE.ORG' };
    assert.is(p.get('afsfile_renew_ticket_expiry_timestamp_seconds', host),
      Date.parse('2026-01-02T13:00:00Z') / 1000);
    assert.is(p.get('afsfile_renew_token_expiry_timestamp_seconds', { identity: 'host', cell: 'example.org' }),
      Date.parse('2026-01-02T12:00:00Z') / 1000);
    assert.is(p.get('afsfile_renew_token_expiry_timestamp_seconds', { identity: 'host', cell: 'old.org' }), 0);
    assert.is(p.get('afsfile_renew_token_expiry_timestamp_seconds', { cell: 'kafs.org' }), undefined);
    assert.is(p.get('afsfile_renew_ticket_expiry_timestamp_seconds', { identity: 'dom7' }), undefined,
      'no ticket: no sample');
    assert.is(p.get('afsfile_renew_failures', { identity: 'dom7' }), 3);
    assert.is(p.get('afsfile_renew_renewals_total', { identity: 'host' }), 4);
    assert.is(fs.statSync(file).mode & 0o777, 0o644, 'node_exporter (its own user) reads it');
  });
});

test('a newline in a label value is escaped; the file is replaced only on change, never half-written', () => {
  withTempDir((dir) => {
    const runDir = path.join(dir, 'run');
    fixture(runDir, '/srv/line\nbreak.img');
    const file = path.join(dir, 'afsfile.prom');
    const w = new MetricsWriter(runDir, file, (l) => assert.unreachable(l));
    w.update();
    const p = parseProm(fs.readFileSync(file, 'utf8'));
    const info = p.samples.find((s) => s.name === 'afsfile_device_info' && s.labels.domid === '7');
    assert.is(info!.labels.image, '/srv/line\nbreak.img');
    const ino = fs.statSync(file).ino;
    w.update();
    assert.is(fs.statSync(file).ino, ino, 'nothing moved: not rewritten');
    const devFile = path.join(runDir, 'status/dev-7-51712.json');
    const st = JSON.parse(fs.readFileSync(devFile, 'utf8')) as Record<string, unknown>;
    writeStatus(runDir, 'dev-7-51712', { ...st, bytesRead: 81920 });
    w.update();
    assert.is.not(fs.statSync(file).ino, ino, 'a figure moved: a new file renamed over the old');
    const now = parseProm(fs.readFileSync(file, 'utf8'));
    assert.is(now.get('afsfile_device_bytes_total', { domid: '7', direction: 'read' }), 81920);
    assert.equal(fs.readdirSync(dir).sort(), ['afsfile.prom', 'run'], 'no temporary file left');
    w.stop();
    const after = parseProm(fs.readFileSync(file, 'utf8'));
    assert.is(after.get('afsfile_worker_up'), 0);
    assert.is(after.get('afsfile_device_up', { domid: '7' }), undefined, 'the devices\' series end with the worker');
  });
});

test('an unwritable metrics file: one warning per distinct error, no crash; the next success writes', () => {
  withTempDir((dir) => {
    const runDir = path.join(dir, 'run');
    fixture(runDir);
    const said: string[] = [];
    const file = path.join(dir, 'missing', 'afsfile.prom');
    const w = new MetricsWriter(runDir, file, (l) => said.push(l));
    w.update();
    w.update();
    assert.is(said.length, 1);
    assert.match(said[0]!, /cannot write the metrics file: ENOENT/);
    fs.mkdirSync(path.join(dir, 'missing'));
    w.update();
    assert.is(parseProm(fs.readFileSync(file, 'utf8')).get('afsfile_worker_up'), 1);
  });
});

test('the reader itself refuses what node_exporter refuses', () => {
  assert.throws(() => parseProm('a 1\n'), /no TYPE/);
  assert.throws(() => parseProm('# TYPE a gauge\na{x="1} 1\n'), /bad labels/);
  assert.throws(() => parseProm('# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x="y"} 2\n'), /not together/);
  assert.throws(() => parseProm('# TYPE a gauge\na 1\na 2\n'), /series twice/);
  assert.throws(() => parseProm('# TYPE a gauge\na 1'), /newline/);
});

test.run();
