// `afsfile create`: sparse and preallocated images, refusing to overwrite, bad sizes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from './helpers/exe';
import { withTempDir } from './helpers/temp';

test('a sparse image has the size and (almost) no blocks', () => {
  withTempDir((tmp) => {
    const img = path.join(tmp, 'a.img');
    const r = run(['create', img, '--size', '64M', '--json']);
    assert.is(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout), { path: img, size: 64 * 1024 * 1024, preallocated: false });
    const st = fs.statSync(img);
    assert.is(st.size, 64 * 1024 * 1024);
    assert.ok(st.blocks * 512 < 1024 * 1024, `sparse: ${st.blocks} blocks`);
    assert.is(st.mode & 0o777, 0o600);
  });
});

test('--preallocate writes every block and shows progress', () => {
  withTempDir((tmp) => {
    const img = path.join(tmp, 'p.img');
    const r = run(['create', img, '--size', '24M', '--preallocate']);
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stderr, /allocating \[#+\] 100%/);
    assert.ok(fs.statSync(img).blocks * 512 >= 24 * 1024 * 1024);
  });
});

test('create never overwrites and rejects sizes that are not whole sectors', () => {
  withTempDir((tmp) => {
    const img = path.join(tmp, 'x.img');
    fs.writeFileSync(img, 'precious');
    let r = run(['create', img, '--size', '1M']);
    assert.is(r.status, 1);
    assert.match(r.stderr, /already exists; afsfile create never overwrites/);
    assert.is(fs.readFileSync(img, 'utf8'), 'precious');
    r = run(['create', path.join(tmp, 'y.img'), '--size', '1000']);
    assert.is(r.status, 1);
    assert.match(r.stderr, /multiple of 512/);
    assert.not.ok(fs.existsSync(path.join(tmp, 'y.img')));
    r = run(['create', path.join(tmp, 'z.img')]);
    assert.is(r.status, 2);
    assert.match(r.stderr, /needs --size/);
  });
});

test.run();
