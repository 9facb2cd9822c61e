// AFSFILE_CPU_PROFILE (src/util/cpu-profile.ts): the executable writes a V8 CPU profile of
// itself on exit and prints its top functions; without the variable it writes nothing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { summarize } from '../../src/util/cpu-profile';
import { run, tempDir } from '../helpers/exe';

test('summarize: self time per function, largest first, with file and line', () => {
  const frame = (functionName: string, url: string, lineNumber: number) => ({ functionName, url, lineNumber });
  const lines = summarize({
    nodes: [
      { id: 1, callFrame: frame('(root)', '', -1) },
      { id: 2, callFrame: frame('pump', '/x/afsfile.cjs', 9) },
      { id: 3, callFrame: frame('', '/x/afsfile.cjs', 41) },
    ],
    samples: [2, 3, 2, 2],
    timeDeltas: [10, 10, 10, 10],
  }, 5);
  assert.equal(lines, ['75.0% pump afsfile.cjs:10', '25.0% (anonymous) afsfile.cjs:42', '0.0% (root)']);
  assert.equal(summarize({ nodes: [] }, 5), ['no samples']);
});

test('the executable writes a profile and the summary when asked, and nothing otherwise', () => {
  const { dir, cleanup } = tempDir('afsfile-cpuprof-');
  try {
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', AFSFILE_CONFIG: '/dev/null' };
    const off = run(['version'], { env });
    assert.equal(off.status, 0);
    assert.not.match(off.stderr, /cpu-profile/);
    assert.equal(fs.readdirSync(dir), []);
    const on = run(['version'], { env: { ...env, AFSFILE_CPU_PROFILE: dir } });
    assert.equal(on.status, 0, on.stderr);
    assert.match(on.stderr, /afsfile: cpu-profile version pid \d+ \d+ms: \d+\.\d% /);
    const files = fs.readdirSync(dir);
    assert.equal(files.length, 1);
    assert.match(files[0], /^afsfile-\d+\.cpuprofile$/);
    const profile = JSON.parse(fs.readFileSync(path.join(dir, files[0]), 'utf8')) as { nodes: unknown[] };
    assert.ok(profile.nodes.length > 0);
  } finally {
    cleanup();
  }
});

test.run();
