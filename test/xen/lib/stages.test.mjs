// Checks of the marker parser and the verdict: node --test test/xen/lib/
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  applyMarker, bootStages, parseMarker, parseMetrics, plan, readStageFile, readStages, verdict,
} from './stages.mjs';

const LIST = `# comment
group core 600 the core
group vbd3 300 the tap route
group afs  400 no stages yet
a     core  all   core     -   60  first stage
b     core  4.17  afsfile  a   60  needs afsfile
c     core  4.17  todo     b   60  later
v     vbd3  4.20  afsfile  a   90  tap
w     vbd3  4.20  afsfile  a   90  tap, longer
select ci 4.17 core
select ci 4.20 v
`;

function withFile(text, fn) {
  const dir = mkdtempSync(join(tmpdir(), 'xentest-'));
  try {
    writeFileSync(join(dir, 'stages.txt'), text);
    return fn(join(dir, 'stages.txt'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function fresh() {
  const file = withFile(LIST, readStageFile);
  return { stages: bootStages(file, '4.17', ['a', 'b', 'c']), bootAt: null, doneAt: null, fatal: null, unknown: [] };
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
  const s = feed(fresh(), ['XENTEST STAGE a BEGIN', 'XENTEST PASS a', 'XENTEST SKIP b no afsfile', 'XENTEST TODO c x',
    'XENTEST DONE rc=0']);
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

test('a marker of a stage the boot does not run is a problem', () => {
  const file = withFile(LIST, readStageFile);
  const s = feed({ stages: bootStages(file, '4.20', ['a', 'v']), bootAt: null, doneAt: null, fatal: null, unknown: [] },
    ['XENTEST STAGE a BEGIN', 'XENTEST PASS a', 'XENTEST STAGE v BEGIN', 'XENTEST PASS v', 'XENTEST SKIP b x',
      'XENTEST DONE rc=0']);
  assert.equal(s.stages[1].xen, '4.20');
  assert.equal(verdict(s).ok, false);
});

test('plan: groups and Xen versions choose the boots; requirements added; the rest reported', () => {
  const file = withFile(LIST, readStageFile);
  const p = plan(file, { groups: ['core'], xen: ['4.17'] });
  assert.deepEqual(p.boots, { '4.17': ['a', 'b', 'c'] });
  assert.deepEqual(p.notRun.map((n) => `${n.name}@${n.xen}`), ['a@4.20']);
  assert.equal(p.budget['4.17'], 600);
  const v = plan(file, { groups: ['vbd3'], xen: ['4.20'] });
  assert.deepEqual(v.boots, { '4.20': ['a', 'v', 'w'] }); // a: required by v, from another group
  assert.equal(v.budget['4.20'], 900);
  const all = plan(file, { groups: ['all'], xen: ['all'] });
  assert.deepEqual(all.boots, { '4.17': ['a', 'b', 'c'], '4.20': ['a', 'v', 'w'] });
  assert.deepEqual(all.notRun, []);
  assert.deepEqual(all.emptyGroups, ['afs']);
  const only = plan(file, { only: ['c'], xen: ['4.17', '4.20'] });
  assert.deepEqual(only.boots, { '4.17': ['a', 'b', 'c'] });
  const ci = plan(file, { select: 'ci', xen: ['all'] });
  assert.deepEqual(ci.boots, { '4.17': ['a', 'b', 'c'], '4.20': ['a', 'v'] }); // not w
  assert.deepEqual(plan(file, { select: 'ci', xen: ['4.20'] }).boots, { '4.20': ['a', 'v'] });
  assert.throws(() => plan(file, { select: 'nope' }), /unknown selection/);
  assert.throws(() => plan(file, { groups: ['nope'] }), /unknown group nope/);
  assert.throws(() => plan(file, { xen: ['4.18'] }), /unknown Xen version 4.18/);
  assert.throws(() => plan(file, { only: ['zz'] }), /unknown stage zz/);
});

test('plan: REQUIRES A|B takes the alternative that runs on each Xen version', () => {
  const file = withFile(`${LIST}x afs all afsfile b|v 60 on either route\ny afs all afsfile x 60 next\n`,
    readStageFile);
  const p = plan(file, { groups: ['afs'], xen: ['all'] });
  assert.deepEqual(p.boots, { '4.17': ['a', 'b', 'x', 'y'], '4.20': ['a', 'v', 'x', 'y'] });
  // an alternative that runs nowhere the stage does is refused
  assert.throws(() => withFile(`${LIST}q core all afsfile b 60 4.17 only\n`, readStageFile), /none of b runs/);
  assert.throws(() => withFile(`${LIST}q core all afsfile b|zz 60 d\n`, readStageFile), /unknown stage zz/);
});

test('stages.txt: bad lines are refused', () => {
  for (const bad of ['group core 600 x\na core 4.18 core - 60 d', 'group core 600 x\na nogroup all core - 60 d',
    'group core 600 x\na core all core zz 60 d', 'group core 600 x\na core all core - 60 d\na core all core - 60 d',
    'group core 600 x\na core all weird - 60 d', 'group core 600 x\na core all core - 60 d\nselect ci 4.17 zz']) {
    assert.throws(() => withFile(bad, readStageFile), /stages.txt/);
  }
});

test('the real stages.txt parses, and every stage has its script', () => {
  const here = new URL('..', import.meta.url).pathname;
  const file = readStageFile(join(here, 'stages.txt'));
  for (const s of file.stages) {
    assert.ok(existsSync(join(here, 'dom0/stages', `${s.name}.sh`)) || s.kind === 'todo', s.name);
  }
  assert.ok(readStages(join(here, 'stages.txt')).length >= file.stages.length);
});
