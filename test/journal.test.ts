// Journal priorities: with stderr the journal stream (JOURNAL_STREAM = its "DEV:INODE", as
// systemd sets it), every stderr line starts with <N>, errors <3>; otherwise nothing changes.
// The "journal" is a file whose device and inode the test puts in JOURNAL_STREAM.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Toolstack } from '../src/sim/toolstack';
import { connectXenStore } from '../src/xen/xenstore-client';
import { EXE } from './helpers/exe';
import { withTempDir } from './helpers/temp';
import { until } from './helpers/wait';
import { workerEnv } from './helpers/worker';
import { startXenstored } from './helpers/xenstored';

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

/** A file standing for the journal stream: JOURNAL_STREAM names its device and inode. */
function journalFile(dir: string): { file: string; stream: string } {
  const file = path.join(dir, 'journal');
  fs.writeFileSync(file, '');
  const st = fs.statSync(file, { bigint: true });
  return { file, stream: `${String(st.dev)}:${String(st.ino)}` };
}

test('renew: a problem only an administrator can fix <3>, a failure it retries <4>', () => {
  withTempDir((dir) => {
    const j = journalFile(dir);
    // No KDC answers on port 1 of loopback: kinit fails, a transient error retried.
    const krb5 = path.join(dir, 'krb5.conf');
    fs.writeFileSync(krb5,
      '[libdefaults]\n default_realm = NOWHERE.TEST\n[realms]\n NOWHERE.TEST = { kdc = 127.0.0.1:1 }\n');
    fs.writeFileSync(path.join(dir, 'kt'), '');
    const env = { JOURNAL_STREAM: j.stream, KRB5_CONFIG: krb5, AFSFILE_RUN_DIR: path.join(dir, 'run') };
    const conf = (text: string): string => {
      const f = path.join(dir, `c${Math.random()}.conf`);
      fs.writeFileSync(f, text);
      return f;
    };
    const missing = runTo(j.file, ['renew', '--no-pag', '--', 'sleep', '2'],
      { ...env, AFSFILE_CONFIG: conf(`keytab = ${dir}/none.keytab\n`) });
    assert.match(missing, /^<3>afsfile renew: ERROR: keytab .*none\.keytab does not exist/m);
    const noKdc = runTo(j.file, ['renew', '--no-pag', '--', 'sleep', '3'],
      { ...env, AFSFILE_CONFIG: conf(`keytab = ${dir}/kt\nprincipal = x@NOWHERE.TEST\n`) });
    assert.match(noKdc, /^<4>afsfile renew: kinit failed .*\(attempt 1; retrying in \d+ s\)$/m);
    assert.not.match(noKdc, /^afsfile/m, 'no line without a priority');
  });
});

test('supervisor: serving <6>, an image it cannot open <3>, an image in use by another guest <4>', async () => {
  const xs = await startXenstored();
  const c = await connectXenStore({ env: { XENSTORED_PATH: xs.socketPath } });
  try {
    await withTempDir(async (dir) => {
      const j = journalFile(dir);
      const runDir = path.join(dir, 'run');
      const fd = fs.openSync(j.file, 'a');
      const w = spawn(EXE, ['worker', '--platform', 'sim'], {
        env: workerEnv(xs.socketPath, runDir, { JOURNAL_STREAM: j.stream }), stdio: ['ignore', 'ignore', fd],
      });
      fs.closeSync(fd);
      const exited = new Promise((r) => w.once('exit', r));
      try {
        const text = (): string => fs.readFileSync(j.file, 'utf8');
        await until('the worker serves', () => /serving backend/.test(text()), 15_000);
        const ts = new Toolstack(c);
        const img = path.join(dir, 'a.img');
        fs.writeFileSync(img, Buffer.alloc(1 << 20));
        await ts.createDomain(11);
        await ts.addVbd({ domid: 11, target: path.join(dir, 'missing.img') });
        await ts.addVbd({ domid: 11, vdev: 'xvdb', target: img });
        await ts.createDomain(12);
        await ts.addVbd({ domid: 12, target: img });
        await until('both refusals logged', () => /cannot serve it/.test(text()) && /: refused: /.test(text()), 15_000);
        const lines = text().split('\n').filter(Boolean);
        assert.ok(lines.some((l) => /^<6>afsfile worker\[\d+\]: serving backend\/vbd/.test(l)), text());
        const cannot = /^<3>afsfile worker\[\d+\]: .*\/11\/51712: cannot serve it: .*missing\.img/;
        assert.ok(lines.some((l) => cannot.test(l)), text());
        assert.ok(lines.some((l) => /^<4>afsfile worker\[\d+\]: .*\/12\/51712: refused: .*in use/.test(l)), text());
        assert.ok(lines.every((l) => /^<[0-7]>/.test(l)), 'every line has a priority');
      } finally {
        w.kill('SIGTERM');
        await exited;
      }
    });
  } finally {
    c.close();
    await xs.stop();
  }
});

test.run();
