// The checks of `npm run lint` besides the type check, run by `npm test` too so that a branch
// learns of them before it lands: no import circle across src/ directories, no new line over
// 120 columns, commit subjects of at most 72 characters (scripts/*.mjs say why).
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from './helpers/exe';

for (const script of ['import-cycles', 'line-length', 'commit-subjects']) {
  test(`scripts/${script}.mjs passes`, () => {
    const file = path.join(ROOT, 'scripts', `${script}.mjs`);
    const r = spawnSync(process.execPath, [file], { cwd: ROOT, encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
  });
}

test.run();
