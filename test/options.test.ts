// The option table through minimist, the environment and the config file, in-process.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseConfigText } from '../src/cli/config-file';
import { ConfigError, FatalError, UsageError } from '../src/cli/errors';
import { configTemplate } from '../src/cli/config-template';
import { validateConfigFile } from '../src/cli/validate-config';
import { MAX_DURATION_S } from '../src/cli/options';
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
  withConfig('\nfsync-interval = soon\n', (file) => {
    assert.throws(() => parseArgs('worker', ['--config', file], { env: {}, readConfig: true }),
      (e: unknown) => e instanceof ConfigError && e.exitCode === 78 && (e as Error).message.startsWith(`${file}:2: fsync-interval expects a duration`));
  });
  assert.throws(() => parseArgs('worker', ['--fsync-interval', 'soon'], { env: {}, readConfig: false }), (e: unknown) => e instanceof UsageError && /^command line: --fsync-interval expects a duration/.test((e as Error).message));
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
  assert.is(parseDuration('500ms'), 0.5);
  assert.is(parseDuration('5 min'), 300);
  assert.is(parseDuration('1d'), 86400);
  assert.ok(Number.isNaN(parseDuration('5 10')), 'two numbers are not a duration');
});

test('one duration syntax for every time option: 5s, 5m, plain seconds', () => {
  const durations = OPTIONS.filter((o) => o.type === 'duration');
  assert.equal(durations.map((o) => o.name).sort(), [
    'fsync-interval', 'hold-timeout', 'hotplug-wait', 'lifetime', 'margin', 'migration-lock-wait', 'retry-cap', 'seconds',
  ]);
  for (const o of durations) {
    const role = o.roles[0]!;
    for (const [text, s] of [['90', 90], ['90s', 90], ['2m', 120]] as const) {
      const a = parseArgs(role, [`--${o.name}=${text}`], { env: {}, readConfig: false });
      assert.is(a.number(o.name), s, `${o.name}=${text}`);
    }
  }
  withConfig('fsync-interval = 5s\nhold-timeout = 5m\nmargin = 5m\nhotplug-wait = 30\n', (file) => {
    assert.is(parseArgs('worker', ['--config', file], { env: {}, readConfig: true }).number('hold-timeout'), 300);
    assert.is(parseArgs('renew', ['--config', file], { env: {}, readConfig: true }).number('margin'), 300);
    assert.is(parseArgs('hotplug', ['--config', file], { env: {}, readConfig: true }).number('hotplug-wait'), 30);
  });
});

test('every duration is bounded below 2^31-1 ms (Node makes a longer timer 1 ms)', () => {
  for (const o of OPTIONS.filter((x) => x.type === 'duration')) {
    assert.ok(o.max !== undefined && o.max <= MAX_DURATION_S, `${o.name} has a max under ${MAX_DURATION_S} s`);
    assert.throws(() => parseArgs(o.roles[0]!, [`--${o.name}=2147484`], { env: {}, readConfig: false }), /expects a duration/, o.name);
  }
  assert.throws(() => parseArgs('worker', ['--fsync-interval=25d'], { env: {}, readConfig: false }), /fsync-interval expects a duration .*from 0\.1 s to 1 d; got "25d"/);
});

test('out-of-range counts are refused with file and line (max-queues 0, 100000 segments, 1.5 requests)', () => {
  for (const [line, why] of [
    ['max-queues = 0', /afsfile\.conf:1: max-queues expects a whole number from 1 to 256; got "0"/],
    ['max-indirect-segments = 100000', /max-indirect-segments expects a whole number from 0 to 4096/],
    ['max-requests = 1.5', /max-requests expects a whole number from 1 to 4096; got "1\.5"/],
    ['max-ring-page-order = 5', /max-ring-page-order expects a whole number from 0 to 4/],
    ['max-inflight = 1K', /max-inflight expects a size .* from 64K to 4G; got "1K"/],
  ] as const) {
    withConfig(`${line}\n`, (file) => {
      assert.throws(() => parseArgs('worker', ['--config', file], { env: {}, readConfig: true }), (e: unknown) => e instanceof ConfigError && why.test((e as Error).message), line);
    });
  }
});

test('check\'s validation lists every problem of the file, for every role, with its line', () => {
  withConfig('max-queues = 0\nbogus = 1\nmargin = 2h\nlifetime = 1h\nhotplug-wait = forever\nfsync-interval = 10s\n', (file) => {
    const r = validateConfigFile(file, true);
    assert.equal(r.problems, [
      `${file}:2: unknown key "bogus" (the keys are listed in \`afsfile help config\`)`,
      `${file}:1: max-queues expects a whole number from 1 to 256; got "0"`,
      `${file}:5: hotplug-wait expects a duration such as 30, 30s, 500ms, 5m, 10h, 1d (a plain number is seconds), from 1 s to 10 min; got "forever"`,
    ]);
    assert.is(r.values.get('fsync-interval'), 10);
  });
});

test('the config template shows every settable key with its default, and is itself a valid config', () => {
  const text = configTemplate();
  const shown = [...text.matchAll(/^# ([a-z][a-z0-9-]*) =(.*)$/gm)].map((m) => [m[1]!, m[2]!.trim()] as const);
  const settable = OPTIONS.filter((o) => o.config && !o.hidden).map((o) => o.name);
  assert.equal(shown.map(([k]) => k).sort(), [...settable].sort());
  assert.ok(settable.length >= 22, String(settable.length));
  // Uncommented, the lines with a value parse to exactly the defaults.
  withConfig(shown.filter(([, v]) => v).map(([k, v]) => `${k} = ${v}`).join('\n'), (file) => {
    assert.equal(validateConfigFile(file, true).problems, []);
    const fromFile = parseArgs('renew', ['--config', file], { env: {}, readConfig: true });
    const defaults = parseArgs('renew', [], { env: {}, readConfig: false });
    for (const n of ['lifetime', 'margin', 'retry-cap']) assert.is(fromFile.number(n), defaults.number(n), n);
  });
});

test.run();
