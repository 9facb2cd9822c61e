// The option table through minimist, the environment and the config file, in-process.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseConfigText } from '../src/cli/config-file';
import { FatalError, UsageError } from '../src/cli/errors';
import { OPTIONS } from '../src/cli/options';
import { parseArgs } from '../src/cli/parse';
import { parseDuration, parseSize } from '../src/util/units';
import { withTempDir } from './helpers/temp';

function withConfig(text: string, fn: (file: string) => void): void {
  withTempDir((tmp) => {
    const file = path.join(tmp, 'afsfile.conf');
    fs.writeFileSync(file, text);
    fn(file);
  });
}

test('defaults come from the table', () => {
  const a = parseArgs('worker', [], { env: {}, readConfig: false });
  assert.is(a.string('run-dir'), '/run/afsfile');
  assert.is(a.number('fsync-interval'), 5);
  assert.is(a.number('max-inflight'), 16 * 1024 * 1024);
  assert.is(a.string('platform'), 'auto');
  assert.is(a.bool('direct'), false);
});

test('config file fills what flags leave open; flags win; env beats the file', () => {
  withConfig('# comment\nfsync-interval = 7   # trailing comment\nrun-dir = "/srv/afsfile"\nplatform = sim\nkeytab = /etc/k.keytab\n', (file) => {
    const a = parseArgs('worker', ['--config', file, '--platform', 'linux'], { env: {}, readConfig: true });
    assert.is(a.number('fsync-interval'), 7);
    assert.is(a.string('run-dir'), '/srv/afsfile');
    assert.is(a.string('platform'), 'linux', 'the flag overrides the file');
    assert.not.ok(a.has('keytab'), 'renew keys in a shared file are ignored by the worker');
    const b = parseArgs('worker', [], { env: { AFSFILE_CONFIG: file, AFSFILE_RUN_DIR: '/tmp/rd' }, readConfig: true });
    assert.is(b.string('run-dir'), '/tmp/rd');
    assert.is(b.number('fsync-interval'), 7);
  });
});

test('a bad config file is a clear error naming the line', () => {
  withConfig('fsync-interval = 5\nthis is not a setting\n', (file) => {
    try {
      parseArgs('worker', ['--config', file], { env: {}, readConfig: true });
      assert.unreachable();
    } catch (err) {
      assert.instance(err, FatalError);
      assert.match((err as Error).message, /afsfile\.conf:2: expected "key = value"/);
    }
  });
  assert.throws(() => parseConfigText('no-such-key = 1\n', 'f'), /f:1: unknown key "no-such-key"/);
  assert.throws(() => parseConfigText('device = x\n', 'f'), /"device" cannot be set in the config file/);
  withConfig('fsync-interval = soon\n', (file) => {
    assert.throws(() => parseArgs('worker', ['--config', file], { env: {}, readConfig: true }), (e: unknown) => e instanceof UsageError && /--fsync-interval expects a non-negative number/.test((e as Error).message));
  });
});

test('a missing named config file (flag or AFSFILE_CONFIG) is an error', () => {
  assert.throws(() => parseArgs('worker', ['--config', '/nonexistent/afsfile.conf'], { env: {}, readConfig: true }), /cannot read config file \/nonexistent/);
  assert.throws(() => parseArgs('worker', [], { env: { AFSFILE_CONFIG: '/nonexistent/afsfile.conf' }, readConfig: true }), /cannot read config file/);
  const empty = parseArgs('worker', [], { env: { AFSFILE_CONFIG: '/dev/null' }, readConfig: true });
  assert.is(empty.number('fsync-interval'), 5);
});

test('lists accumulate from flags and comma-separated file values; --no-pag negates', () => {
  withConfig('cell = a.org, b.org\n', (file) => {
    const a = parseArgs('renew', ['--config', file], { env: {}, readConfig: true });
    assert.equal(a.list('cell'), ['a.org', 'b.org']);
    const b = parseArgs('renew', ['--cell', 'x.org', '--cell', 'y.org', '--no-pag', '--', 'afsfile', 'worker'], { env: {}, readConfig: false });
    assert.equal(b.list('cell'), ['x.org', 'y.org']);
    assert.is(b.bool('no-pag'), true);
    assert.equal(b.command, ['afsfile', 'worker']);
  });
});

test('repeating a single-valued option is an error', () => {
  assert.throws(() => parseArgs('worker', ['--platform', 'sim', '--platform', 'linux'], { env: {}, readConfig: false }), /given more than once/);
});

test('every option has help, roles and a valid default', () => {
  const names = new Set<string>();
  for (const o of OPTIONS) {
    assert.ok(o.help.length > 10, o.name);
    assert.ok(o.roles.length > 0, o.name);
    assert.not.ok(names.has(o.name), `duplicate ${o.name}`);
    names.add(o.name);
    if (o.default !== undefined && o.choices) assert.ok(o.choices.includes(String(o.default)), o.name);
  }
});

test('units: sizes and durations', () => {
  assert.is(parseSize('512'), 512);
  assert.is(parseSize('4k'), 4096);
  assert.is(parseSize('16M'), 16 * 1024 * 1024);
  assert.is(parseSize('1.5G'), 1.5 * 1024 ** 3);
  assert.is(parseSize('10GiB'), 10 * 1024 ** 3);
  assert.ok(Number.isNaN(parseSize('ten')));
  assert.ok(Number.isNaN(parseSize('-1')));
  assert.is(parseDuration('90'), 90);
  assert.is(parseDuration('5m'), 300);
  assert.is(parseDuration('1h30m'), 5400);
  assert.ok(Number.isNaN(parseDuration('soon')));
});

test.run();
