// Checks of the marker parser and the verdict: node --test test/xen/lib/
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyMarker, parseMarker, parseMetrics, readStages, verdict } from './stages.mjs';

const LIST = `# comment
a     core     -   60  first stage
b     afsfile  a   60  needs afsfile
c     todo     b   60  later
`;

function fresh() {
  const dir = mkdtempSync(join(tmpdir(), 'xentest-'));
  try {
    writeFileSync(join(dir, 'stages.txt'), LIST);
    return { stages: readStages(join(dir, 'stages.txt')), bootAt: null, doneAt: null, fatal: null, unknown: [] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function feed(state, lines) {
  lines.forEach((l, i) => { const m = parseMarker(l); if (m) applyMarker(state, m, i); });
  return state;
}

test('parses markers only at the start of a line', () => {
  assert.deepEqual(parseMarker('XENTEST PASS a'), { kind: 'PASS', stage: 'a', rest: '' });
  assert.deepEqual(parseMarker('XENTEST FAIL a why it failed'), { kind: 'FAIL', stage: 'a', rest: 'why it failed' });
  assert.equal(parseMarker('  [guest x] XENTEST PASS a'), null);
  assert.equal(parseMarker('XENTESTPASS a'), null);
});

test('metrics become numbers', () => {
  assert.deepEqual(parseMetrics('x=1.5 y=20 z=abc bad'), { x: 1.5, y: 20, z: 'abc' });
});

test('all pass, todo tolerated unless strict', () => {
  const s = feed(fresh(), ['XENTEST STAGE a BEGIN', 'XENTEST PASS a', 'XENTEST STAGE a END',
    'XENTEST STAGE b BEGIN', 'XENTEST PASS b', 'XENTEST STAGE b END', 'XENTEST TODO c later', 'XENTEST DONE rc=0']);
  assert.equal(verdict(s).ok, true);
  assert.equal(verdict(s, { strict: true }).ok, false);
  assert.equal(s.stages[0].end - s.stages[0].begin, 2);
});

test('skip fails unless allowed; a missing DONE fails', () => {
  const s = feed(fresh(), ['XENTEST STAGE a BEGIN', 'XENTEST PASS a', 'XENTEST SKIP b no afsfile', 'XENTEST TODO c x', 'XENTEST DONE rc=0']);
  assert.equal(verdict(s).ok, false);
  assert.equal(verdict(s, { allowSkip: true }).ok, true);
  const t = feed(fresh(), ['XENTEST STAGE a BEGIN', 'XENTEST PASS a', 'XENTEST SKIP b x', 'XENTEST TODO c x']);
  assert.equal(verdict(t, { allowSkip: true }).ok, false);
});

test('a PASS without BEGIN, or after FAIL, does not count', () => {
  const s = feed(fresh(), ['XENTEST PASS a', 'XENTEST SKIP b x', 'XENTEST TODO c x', 'XENTEST DONE rc=0']);
  assert.equal(verdict(s, { allowSkip: true }).ok, false);
  const t = feed(fresh(), ['XENTEST STAGE a BEGIN', 'XENTEST FAIL a boom', 'XENTEST PASS a', 'XENTEST DONE rc=1']);
  assert.equal(t.stages[0].status, 'fail');
});

test('stages not selected by --only are ignored', () => {
  const s = feed(fresh(), ['XENTEST STAGE a BEGIN', 'XENTEST PASS a', 'XENTEST SKIP b not selected', 'XENTEST SKIP c not selected', 'XENTEST DONE rc=0']);
  assert.equal(verdict(s, { only: ['a'] }).ok, true);
});
