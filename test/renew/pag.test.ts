// Choosing the PAG wrapper and building its command line, without running anything.
import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseArgs } from '../../src/cli/parse';
import { explicitArgs } from '../../src/renew/main';
import { type Host, choosePagWrapper, inOpenAfsPag, selfArgv, shellQuote, wrapperCommand } from '../../src/renew/pag';

const host = (openafsModule: boolean, have: string[]): Host => ({ openafsModule, which: (n) => (have.includes(n) ? `/usr/bin/${n}` : undefined) });

test('auto: pagsh when the OpenAFS module is loaded, else keyctl, else pagsh, else refuse', () => {
  assert.equal(choosePagWrapper('auto', host(true, ['pagsh', 'keyctl'])), { wrapper: 'pagsh', program: '/usr/bin/pagsh' });
  assert.ok('error' in choosePagWrapper('auto', host(true, ['keyctl'])), 'keyctl session is no OpenAFS PAG');
  assert.equal(choosePagWrapper('auto', host(false, ['pagsh', 'keyctl'])), { wrapper: 'keyctl', program: '/usr/bin/keyctl' });
  assert.equal(choosePagWrapper('auto', host(false, ['pagsh'])), { wrapper: 'pagsh', program: '/usr/bin/pagsh' });
  const none = choosePagWrapper('auto', host(false, []));
  assert.ok('error' in none && /--no-pag/.test(none.error));
  assert.ok('error' in choosePagWrapper('keyctl', host(false, ['pagsh'])));
});

test('the executable re-runs itself alone; from the source tree node needs the script', () => {
  assert.equal(selfArgv('/usr/lib/xen/bin/afsfile', '/usr/lib/xen/bin/afsfile', true), ['/usr/lib/xen/bin/afsfile']);
  assert.equal(selfArgv('/usr/bin/node', '/src/build/src/main.js', false), ['/usr/bin/node', '/src/build/src/main.js']);
});

test('keyctl: argv only, nothing for a shell to interpret', () => {
  const w = wrapperCommand({ wrapper: 'keyctl', program: '/bin/keyctl' }, ['/x/afsfile', 'renew', '--in-pag', '--', "it's; rm -rf /"], { SHELL: '/bin/bash' });
  assert.equal(w.argv, ['/bin/keyctl', 'session', '-', '/x/afsfile', 'renew', '--in-pag', '--', "it's; rm -rf /"]);
});

test('pagsh -c: every argument arrives intact, whatever it contains', () => {
  const nasty = ["it's", '$(touch /tmp/pwned)', '`id`', 'a b', '', '"q"', '\\', '*', '\n', "''"];
  assert.is(shellQuote("a'b"), `'a'\\''b'`);
  const inner = ['/usr/bin/printf', '[%s]\\n', ...nasty];
  const w = wrapperCommand({ wrapper: 'pagsh', program: '/usr/bin/pagsh' }, inner, { SHELL: '/bin/bash', PATH: process.env.PATH });
  assert.is(w.argv[1], '-c');
  assert.is(w.env.SHELL, '/bin/sh', 'pagsh runs $SHELL: a known one');
  // Run the string with sh, as pagsh would (its setpag needs the kernel module).
  const r = spawnSync('/bin/sh', ['-c', `${w.argv[2]!}`], { encoding: 'utf8', env: { ...w.env, PATH: process.env.PATH } });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, nasty.map((a) => `[${a}]\n`).join(''));
  const shell = spawnSync('/bin/sh', ['-c', w.argv[2]!.replace(/exec .*/, 'exec printenv SHELL')], { encoding: 'utf8', env: w.env });
  assert.is(shell.stdout.trim(), '/bin/bash', "the caller's SHELL is put back for renew and its child");
  const unset = wrapperCommand({ wrapper: 'pagsh', program: '/usr/bin/pagsh' }, ['x'], {});
  assert.match(unset.argv[2]!, /^unset SHELL; exec 'x'$/);
});

test('inside pagsh: a PAG shows as an 0x41xxxxxx group or an afs_pag key', () => {
  assert.ok(inOpenAfsPag('Name:\tx\nGroups:\t0 1094861636 \n', undefined), '0x41424344');
  assert.ok(inOpenAfsPag('Groups:\t0\n', 'Keyring\n 1 --alswrv 0 0 keyring: _ses\n 2 --alswrv 0 0 \\_ afs_pag: _pag\n'));
  assert.not.ok(inOpenAfsPag('Groups:\t \n', 'Keyring\n 929329939 --alswrv 0 65534 keyring: _uid_ses.0\n'));
});

test('the re-executed renew gets the same command-line options (config file and environment it reads itself)', () => {
  const a = parseArgs('renew', ['--keytab', '/k t', '--cell=a.org', '--cell', 'b.org', '--lifetime=1h', '--pag-wrapper=pagsh', '--', 'afsfile', 'worker', '--platform=sim'], { env: { AFSFILE_RUN_DIR: '/r' }, readConfig: false });
  assert.equal(explicitArgs(a).sort(), ['--cell=a.org', '--cell=b.org', '--keytab=/k t', '--lifetime=3600'] /* durations pass on in seconds */.sort());
  assert.equal(a.command, ['afsfile', 'worker', '--platform=sim']);
  const again = parseArgs('renew', [...explicitArgs(a), '--in-pag', '--', ...a.command], { env: {}, readConfig: false });
  assert.is(again.string('keytab'), '/k t');
  assert.equal(again.list('cell'), ['a.org', 'b.org']);
  assert.ok(again.bool('in-pag'));
});

test.run();
