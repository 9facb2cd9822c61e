// Journal priorities: with stderr the journal stream (JOURNAL_STREAM = its "DEV:INODE", as
// systemd sets it), every stderr line starts with <N>, errors <3>; otherwise nothing changes.
// The "journal" is a file whose device and inode the test puts in JOURNAL_STREAM.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EXE } from './helpers/exe';
import { withTempDir } from './helpers/temp';

function runTo(file: string, args: string[], env: NodeJS.ProcessEnv): string {
  const fd = fs.openSync(file, 'w');
  try {
    spawnSync(EXE, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'ignore', fd], timeout: 20_000 });
  } finally {
    fs.closeSync(fd);
  }
  return fs.readFileSync(file, 'utf8');
}

test('errors <3>, warnings <4>, the rest <6> when stderr is the journal; plain elsewhere', () => {
  withTempDir((dir) => {
    const conf = path.join(dir, 'afsfile.conf');
    fs.writeFileSync(conf, 'max-queues = 0\n');
    const out = path.join(dir, 'journal');
    fs.writeFileSync(out, '');
    const st = fs.statSync(out, { bigint: true });
    const stream = `${String(st.dev)}:${String(st.ino)}`;
    const env = { AFSFILE_CONFIG: conf, AFSFILE_RUN_DIR: path.join(dir, 'run'), JOURNAL_STREAM: stream };
    assert.is(runTo(out, ['worker', '--platform', 'sim'], env),
      `<3>afsfile: ${conf}:1: max-queues expects a whole number from 1 to 256; got "0"\n`);
    // A usage error: both lines prefixed, the hint as information.
    const usage = runTo(out, ['frob'], env).split('\n').filter(Boolean);
    assert.equal(usage, ['<3>afsfile: unknown command "frob"', "<6>Try 'afsfile --help'."]);
    // Not the journal (another file's inode, or no JOURNAL_STREAM): no prefixes.
    const other = runTo(out, ['frob'], { ...env, JOURNAL_STREAM: '1:2' });
    assert.is(other.split('\n')[0], 'afsfile: unknown command "frob"');
    assert.is(runTo(out, ['frob'], { ...env, JOURNAL_STREAM: '' }).split('\n')[0], 'afsfile: unknown command "frob"');
  });
});

test.run();
