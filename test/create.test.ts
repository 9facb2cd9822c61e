// `afsfile create`: sparse and preallocated images, refusing to overwrite, bad sizes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run, tempDir } from './helpers/exe';

test('a sparse image has the size and (almost) no blocks', () => {
  const t = tempDir();
  try {
    const img = path.join(t.dir, 'a.img');
    const r = run(['create', img, '--size', '64M', '--json']);
    assert.is(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout), { path: img, size: 64 * 1024 * 1024, preallocated: false });
    const st = fs.statSync(img);
    assert.is(st.size, 64 * 1024 * 1024);
    assert.ok(st.blocks * 512 < 1024 * 1024, `sparse: ${st.blocks} blocks`);
    assert.is(st.mode & 0o777, 0o600);
  } finally {
    t.cleanup();
  }
});

test('--preallocate writes every block and shows progress', () => {
  const t = tempDir();
  try {
    const img = path.join(t.dir, 'p.img');
    const r = run(['create', img, '--size', '24M', '--preallocate']);
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stderr, /allocating \[#+\] 100%/);
    assert.ok(fs.statSync(img).blocks * 512 >= 24 * 1024 * 1024);
  } finally {
    t.cleanup();
  }
});

test('create never overwrites and rejects sizes that are not whole sectors', () => {
  const t = tempDir();
  try {
    const img = path.join(t.dir, 'x.img');
    fs.writeFileSync(img, 'precious');
    let r = run(['create', img, '--size', '1M']);
    assert.is(r.status, 1);
    assert.match(r.stderr, /already exists; afsfile create never overwrites/);
    assert.is(fs.readFileSync(img, 'utf8'), 'precious');
    r = run(['create', path.join(t.dir, 'y.img'), '--size', '1000']);
    assert.is(r.status, 1);
    assert.match(r.stderr, /multiple of 512/);
    assert.not.ok(fs.existsSync(path.join(t.dir, 'y.img')));
    r = run(['create', path.join(t.dir, 'z.img')]);
    assert.is(r.status, 2);
    assert.match(r.stderr, /needs --size/);
  } finally {
    t.cleanup();
  }
});

test.run();
