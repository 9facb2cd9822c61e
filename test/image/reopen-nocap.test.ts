// Issue 19 defect 10: the device process runs without CAP_DAC_OVERRIDE and gets the image as
// an fd from the supervisor. After new tokens (or a failed fsync) it reopens the image, which
// only AFS needs; on a local image root does not own, opening /proc/self/fd/N again is refused
// without that capability. The image must then keep its open file and report no failure.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from '../helpers/exe';
import { withTempDir } from '../helpers/temp';

/** Runs `body` in a node process without CAP_DAC_OVERRIDE (as the device process runs), with
 * the image open as fd 3; returns what it printed. */
function withoutDacOverride(file: string, body: string): { out: string; status: number | null } {
  const fd = fs.openSync(file, 'r+');
  try {
    const script = `
      const { Image } = require(${JSON.stringify(path.join(ROOT, 'build/src/image/image.js'))});
      const say = (x) => process.stdout.write(JSON.stringify(x) + '\\n');
      ${body}`;
    const drop = '-dac_override,-dac_read_search';
    const argv = [`--bounding-set=${drop}`, `--inh-caps=${drop}`, '--', process.execPath, '-e', script];
    const r = spawnSync('setpriv', argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe', fd] });
    return { out: r.stdout + r.stderr, status: r.status };
  } finally {
    fs.closeSync(fd);
  }
}

test('reopen of a local image root does not own, without CAP_DAC_OVERRIDE: the open file stays, no error', () =>
  withTempDir((dir) => {
    fs.chmodSync(dir, 0o755);
    const file = path.join(dir, 'user.img');
    fs.writeFileSync(file, Buffer.alloc(1 << 20));
    fs.chownSync(file, 65534, 65534);
    fs.chmodSync(file, 0o600);
    const r = withoutDacOverride(file, `
      for (const reopen of [undefined, true]) {
        const opts = { readOnly: false, uring: false, ...(reopen ? { reopen } : {}) };
        const im = Image.fromFd(3, ${JSON.stringify(file)}, opts);
        im.reopen((err) => {
          const buf = Buffer.alloc(512, 7);
          im.write(buf, 0, (werr) => say({ reopen: reopen ?? 'default', needed: im.reopenNeeded,
            err: err ? err.code : null, fd: im.fd, write: werr ? werr.code : 'ok' }));
        });
        if (reopen) break;
      }`);
    const lines = r.out.trim().split('\n').filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.is(lines.length, 2, r.out);
    assert.equal(lines[0], { reopen: 'default', needed: false, err: null, fd: 3, write: 'ok' }, r.out);
    // Forced: the open really is refused here (so the case above would have failed before).
    assert.is(lines[1]!.err, 'EACCES', `forced reopen: ${r.out}`);
  }));

test.run();
