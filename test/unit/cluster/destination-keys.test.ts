import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DestinationKeys } from '../../../src/cluster/index.js';
import { parseLimits } from '../../../src/config/index.js';

const MX: Record<string, string[]> = {
  'gmail.com': ['alt1.gmail-smtp-in.l.google.com', 'gmail-smtp-in.l.google.com'],
  'googlemail.com': ['gmail-smtp-in.l.google.com', 'alt1.gmail-smtp-in.l.google.com'],
  'contoso.com': ['contoso-com.mail.protection.outlook.com'],
  'fabrikam.com': ['fabrikam-com.mail.protection.outlook.com'],
  'small.test': ['mx.small.test'],
};

function keys(ini: string, local = 20) {
  const limits = parseLimits(ini);
  const looked: string[] = [];
  return {
    looked,
    keys: new DestinationKeys({
      limits: () => limits,
      localLimit: () => local,
      mxHosts: async (domain) => {
        looked.push(domain);
        return MX[domain];
      },
      clock: { now: () => 1_000_000 },
    }),
  };
}

describe('DestinationKeys', () => {
  it('leaves every domain alone without limits.ini, and answers at once for a domain section', () => {
    assert.equal(keys('').keys.resolve('small.test'), undefined);
    const { keys: k, looked } = keys('[orange.fr]\nmax_connections=2\n');
    assert.deepEqual(k.resolve('orange.fr'), { key: 'orange.fr', limits: { maxConnections: 2 } });
    assert.equal(k.resolve('small.test'), undefined);
    assert.deepEqual(looked, [], 'no MX lookup when no site can apply');
  });

  it('says when the connection cap is only this node\'s (limits.ini names no max_connections): Redis does not share it', () => {
    const { keys: k } = keys('[orange.fr]\nmax_message_rate=10/s\n', 5);
    assert.deepEqual(k.resolve('orange.fr'), { key: 'orange.fr', limits: { maxConnections: 5, nodeOnly: true, rate: { count: 10, perMs: 1000, burst: 1 } } });
  });

  it('takes unset keys from [*] and lets the lower connection cap win', () => {
    const { keys: k } = keys('[*]\nmax_connections=50\nmax_message_rate=10/s\n[orange.fr]\nmax_connections=2\n', 5);
    assert.deepEqual(k.resolve('orange.fr'), { key: 'orange.fr', limits: { maxConnections: 2, rate: { count: 10, perMs: 1000, burst: 1 } } });
    assert.deepEqual(k.resolve('small.test'), { key: 'small.test', limits: { maxConnections: 5, rate: { count: 10, perMs: 1000, burst: 1 } } }, 'routes.ini/outbound.ini cap of 5 is lower than 50');
  });

  it('keys every domain on the same MX hosts as a scope=site section by that site', async () => {
    const { keys: k } = keys('[gmail.com]\nmax_connections=3\nscope=site\n');
    const gmail = await k.resolve('gmail.com');
    const googlemail = await k.resolve('googlemail.com');
    assert.equal(gmail?.key, 'site:alt1.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com');
    assert.deepEqual(googlemail, gmail, 'one key and one limit for both');
    assert.equal(await k.resolve('small.test'), undefined);
    assert.deepEqual(k.resolve('googlemail.com'), gmail, 'from the cache, at once');
  });

  it('keys domains whose MX hosts match an [mx:] pattern by the section', async () => {
    const { keys: k } = keys('[mx:*.mail.protection.outlook.com]\nmax_message_rate=60/min\n');
    const a = await k.resolve('contoso.com');
    const b = await k.resolve('fabrikam.com');
    assert.equal(a?.key, 'mx:*.mail.protection.outlook.com');
    assert.deepEqual(a, b);
    assert.equal(await k.resolve('small.test'), undefined);
  });
});
