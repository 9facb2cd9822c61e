#!/usr/bin/env node
// Commit subjects are at most 72 characters (detail goes in the body), for every commit after
// ac5fa6d, when the rule was written down. The few landed before this check existed are listed
// below by hash; nothing is added to that list.
import { execFileSync } from 'node:child_process';

const SINCE = 'ac5fa6d';
const MAX = 72;
const LANDED_BEFORE_THE_CHECK = new Set([
  'f1e77306ed1db90ff0bea058838095bb4b539172',
  'aea6772a3da9f29de876cebed035a82cc1d84431',
  '89a37cf8e2f5a31ce3a1df2423a6a4bc4ba3a534',
  'd301464d8604582a77e69395714b26cc76446833',
  'a26de43602796b14b970c347139840cd48042ab4',
  'e771cb9dccc61b5980bf66f4251f4870b322a663',
]);

const git = (...a) => execFileSync('git', a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
try {
  git('cat-file', '-e', `${SINCE}^{commit}`);
} catch {
  process.stdout.write(`commit-subjects: ${SINCE} is not in this clone (shallow?): nothing checked\n`);
  process.exit(0);
}
const bad = git('log', '--no-merges', '--format=%H %s', `${SINCE}..HEAD`).split('\n').filter(Boolean)
  .map((l) => ({ hash: l.slice(0, l.indexOf(' ')), subject: l.slice(l.indexOf(' ') + 1) }))
  .filter((c) => c.subject.length > MAX && !LANDED_BEFORE_THE_CHECK.has(c.hash));
for (const c of bad) {
  const why = `subject has ${c.subject.length} characters (at most ${MAX}; detail goes in the body)`;
  process.stderr.write(`commit ${c.hash.slice(0, 10)}: ${why}: ${c.subject}\n`);
}
if (bad.length) process.exit(1);
process.stdout.write(`commit-subjects: every subject since ${SINCE} is at most ${MAX} characters\n`);
