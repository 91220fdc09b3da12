import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/core/index.js';
import { DEFAULT_DKIM_HEADERS, loadConfig } from '../../../src/config/index.js';
import { KeyRing } from '../../../src/dkim/index.js';
import { writeConfig } from '../../helpers/tern-process.js';
import { makeDkimKey } from '../../helpers/dkim.js';

const rsa = makeDkimKey('rsa-sha256', 1024);
const ed = makeDkimKey('ed25519-sha256');

function refused(ini: string, key: RegExp) {
  assert.throws(
    () => loadConfig(writeConfig({ 'dkim.ini': ini, 'k.pem': rsa, 'e.pem': ed })),
    (err: unknown) => err instanceof ConfigError && err.file === 'dkim.ini' && key.test(err.key),
  );
}

describe('dkim.ini', () => {
  it('reads sections, labels for more selectors, [*] and [main]; defaults: relaxed/relaxed, rsa-sha256, a sound header list with From over-signed', () => {
    const c = loadConfig(
      writeConfig({
        'k.pem': rsa,
        'e.pem': ed,
        'dkim.ini': '[main]\nsign_by=envelope\n[Example.com]\nselector=s1\nkey=k.pem\n[example.com/ed]\nselector=s2\nkey=e.pem\nalgorithm=ed25519-sha256\nheaders=From:Subject\n[*]\nselector=any\nkey=k.pem\ndomain=esp.example\n',
      }),
    );
    assert.equal(c.dkim.sign_by, 'envelope');
    const [one, two] = c.dkim.domains.get('example.com')!;
    assert.deepEqual([one.section, one.selector, one.algorithm, one.canonicalization, one.keyFile], ['Example.com', 's1', 'rsa-sha256', 'relaxed/relaxed', 'k.pem']);
    assert.deepEqual(one.headers, [...DEFAULT_DKIM_HEADERS]);
    assert.ok(!(one.headers as readonly string[]).includes('received'));
    assert.deepEqual(one.oversign, ['from']);
    assert.deepEqual([two.selector, two.algorithm, two.headers], ['s2', 'ed25519-sha256', ['from', 'subject']]);
    assert.equal(c.dkim.domains.get('*')![0].signingDomain, 'esp.example');
    assert.equal(loadConfig(writeConfig({})).dkim.domains.size, 0, 'no dkim.ini: nothing signed');
  });

  it('refuses unknown keys, bad sections, bad selectors, a selector twice and keys of the wrong kind, naming the section and key', () => {
    refused('[a.test]\nselector=s1\nkey=k.pem\nbogus=1\n', /^\[a\.test\] bogus$/);
    refused('[a.test/x/y]\nselector=s1\nkey=k.pem\n', /^\[a\.test\/x\/y\]$/);
    refused('[a.test]\nselector=-bad-\nkey=k.pem\n', /^\[a\.test\] selector$/);
    refused('[a.test]\nselector=s1\nkey=k.pem\ncanonicalization=loose/loose\n', /^\[a\.test\] canonicalization$/);
    refused('[a.test]\nselector=s1\nkey=k.pem\n[a.test/b]\nselector=s1\nkey=k.pem\n', /^\[a\.test\/b\] selector$/);
    refused('[a.test]\nselector=s1\nkey=e.pem\n', /^\[a\.test\] key$/);
    refused('[a.test]\nselector=s1\nkey=missing.pem\n', /^\[a\.test\] key$/);
    refused('selector=s1\n', /^selector$/);
  });

  it('a sub-domain signs with its nearest parent\'s section, then [*] as the message\'s own domain; without either, not at all', () => {
    const c = loadConfig(writeConfig({ 'k.pem': rsa, 'e.pem': ed, 'dkim.ini': '[example.com]\nselector=s1\nkey=k.pem\n[example.com/ed]\nselector=s2\nkey=e.pem\nalgorithm=ed25519-sha256\n[mail.example.com]\nselector=m\nkey=k.pem\n' }));
    const ring = new KeyRing(c.dkim);
    assert.deepEqual(ring.keysFor('EXAMPLE.com').map((k) => `${k.domain} ${k.selector}`), ['example.com s1', 'example.com s2']);
    assert.deepEqual(ring.keysFor('news.example.com').map((k) => `${k.domain} ${k.selector}`), ['example.com s1', 'example.com s2']);
    assert.deepEqual(ring.keysFor('a.mail.example.com').map((k) => `${k.domain} ${k.selector}`), ['mail.example.com m']);
    assert.deepEqual(ring.keysFor('example.org'), []);
    assert.deepEqual(ring.keysFor('com'), []);
    const star = new KeyRing(loadConfig(writeConfig({ 'k.pem': rsa, 'dkim.ini': '[*]\nselector=any\nkey=k.pem\n' })).dkim);
    assert.deepEqual(star.keysFor('Shop.Example.org').map((k) => `${k.domain} ${k.selector}`), ['shop.example.org any']);
  });
});
