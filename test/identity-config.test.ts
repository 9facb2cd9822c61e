// Per-domain identities in the config file (src/cli/identity-config.ts): the syntax, every error
// naming file and line, a domain bound twice, and xl's migration names binding as the domain.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { scanConfigText } from '../src/cli/config-file';
import { bindingName, identitiesFrom, identityFor, parseIdentityEntry } from '../src/cli/identity-config';

test('identity.LABEL lines: keytab, domains, optional principal and cells', () => {
  const text = [
    'identity.web = keytab=/k/web.keytab domains=web1,web2',
    'identity.db_2 = keytab=/k/db.keytab principal=afsfile/db@EXAMPLE.ORG domains=db1 cell=example.org,other.org',
    'identity-default = required',
  ].join('\n');
  const { values, problems } = scanConfigText(text, 'f');
  assert.equal(problems, []);
  const ids = identitiesFrom(values);
  assert.equal(ids.map((i) => [i.label, i.keytab, i.principal, i.domains, i.cells, i.where]), [
    ['web', '/k/web.keytab', undefined, ['web1', 'web2'], undefined, 'f:1'],
    ['db_2', '/k/db.keytab', 'afsfile/db@EXAMPLE.ORG', ['db1'], ['example.org', 'other.org'], 'f:2'],
  ]);
  assert.is(identityFor(ids, 'web2')?.label, 'web');
  assert.is(identityFor(ids, 'web2--incoming')?.label, 'web', 'a migration destination binds as the domain');
  assert.is(identityFor(ids, 'db1--migratedaway')?.label, 'db_2');
  assert.is(identityFor(ids, 'web3'), undefined);
  assert.is(bindingName('a--incoming--incoming'), 'a--incoming');
  assert.equal([ids[0]!.lifetimeS, ids[0]!.marginS, ids[0]!.retryCapS], [undefined, undefined, undefined],
    'without its own, an identity takes renew\'s lifetime, margin and retry-cap');
});

test('identity lines: lifetime=, margin=, retry-cap= of their own, with renew\'s syntax and bounds', () => {
  const { values, problems } = scanConfigText(
    'identity.batch = keytab=/k/b.keytab domains=b1 lifetime=1d margin=30m retry-cap=90', 'f');
  assert.equal(problems, []);
  const [b] = identitiesFrom(values);
  assert.equal([b!.lifetimeS, b!.marginS, b!.retryCapS], [86_400, 1800, 90]);
  const bad: Array<[string, RegExp]> = [
    ['lifetime=8d', /f:1: identity\.a: lifetime= expects a duration .*from 1 s to 7 d; got "8d"/],
    ['margin=soon', /f:1: identity\.a: margin= expects a duration/],
    ['retry-cap=0', /f:1: identity\.a: retry-cap= expects a duration .*from 1 s/],
    ['lifetime=1h lifetime=2h', /lifetime= given twice/],
  ];
  for (const [words, want] of bad) {
    const { problems: p } = scanConfigText(`identity.a = keytab=/k domains=a ${words}`, 'f');
    assert.is(p.length, 1, words);
    assert.match(p[0]!, want);
  }
});

test('identity lines: each mistake named with file and line, for every role', () => {
  const bad: Array<[string, RegExp]> = [
    ['identity.Web = keytab=/k domains=a', /f:1: identity\.Web: the label must be/],
    ['identity.host = keytab=/k domains=a', /"host" is renew's own identity/],
    ['identity.a = keytab=k domains=a', /keytab= must be an absolute path/],
    ['identity.a = keytab=/k', /domains= must name at least one domain/],
    ['identity.a = keytab=/k domains=a b', /expected keytab=FILE domains=NAME/],
    ['identity.a = keytab=/k domains=a keytab=/j', /keytab= given twice/],
    ['identity.a = keytab=/k domains=a;rm', /"a;rm" is not a domain name/],
    ['identity.a.b = keytab=/k domains=a', /expected "key = value"|the label must be/],
  ];
  for (const [line, want] of bad) {
    const { problems } = scanConfigText(line, 'f');
    assert.is(problems.length, 1, line);
    assert.match(problems[0]!, want);
  }
  const twice = scanConfigText('identity.a = keytab=/k domains=x\nidentity.b = keytab=/j domains=y,x', 'f');
  assert.equal(twice.problems, []);
  assert.throws(() => identitiesFrom(twice.values), /f:2: domain x is already bound to identity a \(f:1\)/);
  assert.throws(() => parseIdentityEntry('identity.a', 'keytab=/k domains=', 'g:3'), /g:3: identity\.a: domains=/);
});

test.run();
