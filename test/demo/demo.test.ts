// `afsfile demo` from the built executable: the whole data path without Xen, every byte checked.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../helpers/exe';
import { withTempDir } from '../helpers/temp';

test('dist/afsfile demo --json: ops done, zero mismatches, exit 0, temp image removed', () => {
  withTempDir((tmp) => {
    const r = run(['demo', '--json', '--seconds', '1', '--size', '16M'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', AFSFILE_CONFIG: '/nonexistent', TMPDIR: tmp },
      timeoutMs: 60_000,
    });
    assert.is(r.status, 0, r.stderr);
    const s = JSON.parse(r.stdout) as Record<string, unknown> & { latencyMs: { p50: number; p99: number } };
    assert.ok(s.ok);
    assert.ok((s.ops as number) > 0);
    assert.ok((s.reads as number) > 0 && (s.writes as number) > 0 && (s.flushes as number) > 0);
    assert.ok((s.indirectRequests as number) > 0, 'large requests went indirect');
    assert.is(s.mismatches, 0);
    assert.is(s.imageMismatches, 0);
    assert.is(s.errors, 0);
    assert.ok((s.imageBytesChecked as number) > 0);
    assert.ok((s.fsyncs as number) > 0);
    assert.ok(s.latencyMs.p99 >= s.latencyMs.p50);
    assert.equal(fs.readdirSync(tmp).filter((f) => f.startsWith('afsfile-demo-')), [], 'temp image removed');
  });
});

test('dist/afsfile demo --image keeps the image and its content verifies', () => {
  withTempDir((tmp) => {
    const img = path.join(tmp, 'given.img');
    const r = run(['demo', '--image', img, '--size', '8M', '--seconds', '0.5', '--queue-depth', '4'], {
      timeoutMs: 60_000,
    });
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /result\s+OK/);
    assert.match(r.stdout, /0 mismatches/);
    assert.is(fs.statSync(img).size, 8 * 1024 * 1024);
    // An existing image is refused (the demo overwrites it) and left alone...
    const before = fs.readFileSync(img);
    const refused = run(['demo', '--image', img, '--seconds', '0.5']);
    assert.is(refused.status, 1);
    assert.match(refused.stderr, /given\.img exists and the demo overwrites it; use a new path, or --force/);
    assert.ok(fs.readFileSync(img).equals(before), 'untouched');
    // ...and with --force a second run (unknown old content) still verifies what it writes.
    const again = run(['demo', '--image', img, '--force', '--seconds', '0.5', '--json'], { timeoutMs: 60_000 });
    assert.is(again.status, 0, again.stderr);
    assert.is(JSON.parse(again.stdout).mismatches, 0);
  });
});

test('dist/afsfile demo honours the data-path options (no indirect segments advertised → none used)', () => {
  const r = run(['demo', '--json', '--seconds', '0.5', '--size', '8M', '--max-indirect-segments', '0', '--max-queues', '1', '--max-requests', '4'], { timeoutMs: 60_000 });
  assert.is(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.ok(s.ok);
  assert.is(s.indirectRequests, 0);
  assert.ok(s.ringRequests > s.reads + s.writes, 'large I/O split into direct requests');
});

test('dist/afsfile demo refuses an image a device has attached, even a new path to it', () => {
  withTempDir((tmp) => {
    const img = path.join(tmp, 'attached.img');
    const runDir = path.join(tmp, 'run');
    fs.mkdirSync(path.join(runDir, 'status'), { recursive: true });
    const dev = { domid: 7, devid: 51712, image: img };
    fs.writeFileSync(path.join(runDir, 'status/dev-7-51712.json'), JSON.stringify(dev));
    fs.writeFileSync(img, 'guest data');
    const r = run(['demo', '--image', path.join(tmp, '.', 'attached.img'), '--seconds', '0.5'],
      { env: { PATH: process.env.PATH, AFSFILE_CONFIG: '/dev/null', AFSFILE_RUN_DIR: runDir } });
    assert.is(r.status, 1);
    assert.match(r.stderr, /attached\.img is attached to domain 7 device 51712: the demo would overwrite/);
    assert.is(fs.readFileSync(img, 'utf8'), 'guest data');
  });
});

test('dist/afsfile demo rejects a bad --queue-depth with exit 2', () => {
  assert.is(run(['demo', '--queue-depth', '0']).status, 2);
  assert.is(run(['demo', '--max-ring-page-order', '9']).status, 2);
});

test.run();
