// `afsfile create`: sparse and preallocated images, refusing to overwrite, bad sizes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { parseSize } from '../src/util/units';
import { EXE, run } from './helpers/exe';
import { until } from './helpers/wait';
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
    assert.match(r.stderr, /\nfsync: making sure all 24\.0 MiB are stored .*\nfsync: done in [\d.]+ s\n/,
      'the final fsync is a phase');
    assert.match(r.stderr, /created .*p\.img: 24\.0 MiB \(25165824 bytes\), preallocated/);
    assert.equal(fs.readdirSync(tmp), ['p.img'], 'no temporary name left');
    assert.ok(fs.statSync(img).blocks * 512 >= 24 * 1024 * 1024);
  });
});

test('Ctrl-C during --preallocate: nothing under the final name, the temporary file removed', async () => {
  await withTempDir(async (tmp) => {
    const img = path.join(tmp, 'big.img');
    const child = spawn(EXE, ['create', img, '--size', '64G', '--preallocate'],
      { env: { PATH: process.env.PATH, AFSFILE_CONFIG: '/dev/null' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const growing = (n: string): boolean =>
      n.startsWith('.big.img.afsfile-create-') && fs.statSync(path.join(tmp, n)).size > 0;
    await until('the temporary file grows', () => fs.readdirSync(tmp).some(growing), 10_000);
    assert.not.ok(fs.existsSync(img), 'never under the final name while being written');
    child.kill('SIGINT');
    assert.is(await exited, 130);
    assert.equal(fs.readdirSync(tmp), [], 'nothing left');
    assert.match(err, /interrupted \(SIGINT\): removed the partial .*; .*big\.img was not created/);
  });
});

test('sizes: G is GiB as truncate -s reads it, GB is 10^9; help says so', () => {
  assert.is(parseSize('1G'), 1024 ** 3);
  assert.is(parseSize('1GiB'), 1024 ** 3);
  assert.is(parseSize('1GB'), 1e9);
  assert.is(parseSize('2kB'), 2000);
  assert.match(run(['create', '--help']).stdout.replace(/\s+/g, ' '),
    /K, M, G, T are powers of 1024 \(10G = 10 GiB, as truncate -s reads it; 10GB = 10\^10 bytes\)/);
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
