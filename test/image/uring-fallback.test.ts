// io_uring refused (seccomp EPERM, through test/helpers/no-uring.c; the host's sysctl is not
// ours to change): images fall back to the thread pool and say so once, `afsfile check` says
// so too, and the engine's suites (everything that drives a real Image) pass on that path.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { uringProblem } from '../../src/image/uring';
import { checkFinding } from '../helpers/check-finding';
import { noUringWrapper, repoRoot } from '../helpers/no-uring';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'afsfile-no-uring-test-'));
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('refused: the thread-pool path serves, said once per process', () => {
  const img = path.join(dir, 'a.img');
  fs.writeFileSync(img, Buffer.alloc(1 << 20, 5));
  const script = `
    const { Image } = require(${JSON.stringify(path.join(repoRoot, 'build/src/image/image.js'))});
    const a = Image.open(${JSON.stringify(img)}, { readOnly: false });
    const b = Image.open(${JSON.stringify(img)}, { readOnly: true });
    const buf = new Uint8Array(4096);
    a.write(new Uint8Array(4096).fill(9), 4096, (e) => {
      if (e) throw e;
      b.read(buf, 4096, (e2) => {
        if (e2) throw e2;
        console.log(JSON.stringify({ a: a.ioPath, b: b.ioPath, byte: buf[100] }));
        a.close(); b.close();
      });
    });`;
  const r = spawnSync(noUringWrapper(), [process.execPath, '-e', script], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { a: unknown; b: unknown; byte: number };
  assert.equal(out.a, { kind: 'threadpool', why: 'io_uring_setup: EPERM' });
  assert.equal(out.b, out.a);
  assert.is(out.byte, 9);
  assert.is(r.stderr.split('io_uring refused').length - 1, 1, r.stderr);
  assert.match(r.stderr, 'afsfile: io_uring refused (io_uring_setup: EPERM); image I/O goes through the thread pool');
});

test('afsfile check reports the refusal, and io_uring where it is allowed', () => {
  const exe = path.join(repoRoot, 'dist/afsfile');
  const finding = (cmd: string[]) => checkFinding(cmd, dir, 'io_uring');
  const refused = finding([noUringWrapper(), exe]);
  assert.ok(refused, 'an io_uring finding');
  assert.match(refused!.detail, 'io_uring_setup: EPERM');
  assert.match(refused!.detail, 'thread pool');
  // Where the host allows io_uring, check says so.
  if (uringProblem() === null) assert.match(finding([exe])!.detail, 'available');
});

test('the engine suites pass with io_uring refused', () => {
  // Every suite that drives a real Image: the engine's, the image's, the device's.
  const pattern = '^build/test/(engine|image|device)/(?!uring)';
  const runner = path.join(repoRoot, 'test/runner.mjs');
  const r = spawnSync(noUringWrapper(), [process.execPath, runner, pattern],
    { encoding: 'utf8', cwd: repoRoot, timeout: 300_000 });
  assert.is(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, / 0 failed/);
  assert.not.match(r.stdout, /runner: no test files matched/);
});

test.run();
