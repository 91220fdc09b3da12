import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DestinationKeys, OverrideTable } from '../../../src/cluster/index.js';
import { parseLimits } from '../../../src/config/index.js';

const MX: Record<string, string[]> = {
  'contoso.com': ['contoso-com.mail.protection.outlook.com'],
  'fabrikam.com': ['fabrikam-com.mail.protection.outlook.com'],
  'small.test': ['mx.small.test'],
};

function keys(ini: string, local = 20) {
  let now = 1_000_000;
  const clock = { now: () => now };
  const table = new OverrideTable(clock);
  const limits = parseLimits(ini);
  const k = new DestinationKeys({ limits: () => limits, localLimit: () => local, mxHosts: async (d) => MX[d], clock, overrides: table });
  return { k, table, later: (ms: number) => (now += ms), now: () => now };
}

describe('DestinationKeys with limit overrides', () => {
  it('the lower of limits.ini and the override wins, connections and rate alike', () => {
    const { k, table, now } = keys('[orange.fr]\nmax_connections=5\nmax_message_rate=100/min\n');
    table.set({ destination: 'orange.fr', maxConnections: 1, reason: '', since: now(), until: now() + 60_000 });
    assert.deepEqual(k.resolve('orange.fr'), { key: 'orange.fr', limits: { maxConnections: 1, rate: { count: 100, perMs: 60_000, burst: 1 } } }, 'the rate of limits.ini stays: the override sets none');
    table.set({ destination: 'orange.fr', maxConnections: 9, maxMessageRate: { count: 1, perMs: 60_000 }, reason: '', since: now(), until: now() + 60_000 });
    assert.deepEqual(k.resolve('orange.fr'), { key: 'orange.fr', limits: { maxConnections: 5, rate: { count: 1, perMs: 60_000, burst: 1 } } }, 'a higher max_connections does not raise limits.ini');
    table.set({ destination: 'orange.fr', maxMessageRate: { count: 1000, perMs: 60_000 }, reason: '', since: now(), until: now() + 60_000 });
    assert.deepEqual(k.resolve('orange.fr'), { key: 'orange.fr', limits: { maxConnections: 5, rate: { count: 100, perMs: 60_000, burst: 1 } } }, 'a faster rate does not raise it either');
  });

  it('shapes a domain limits.ini leaves alone, and lets go of it when the override expires', () => {
    const { k, table, now, later } = keys('');
    assert.equal(k.resolve('small.test'), undefined);
    table.set({ destination: 'small.test', maxConnections: 1, maxMessageRate: { count: 10, perMs: 60_000 }, reason: 'x', since: now(), until: now() + 60_000 });
    assert.deepEqual(k.resolve('small.test'), { key: 'small.test', limits: { maxConnections: 1, rate: { count: 10, perMs: 60_000, burst: 1 } } });
    later(60_000);
    assert.equal(k.resolve('small.test'), undefined, 'expired: limits.ini (none) applies again');
  });

  it('an mx: override shapes every domain whose MX hosts match, under one key', async () => {
    const { k, table, now } = keys('');
    table.set({ destination: 'mx:*.mail.protection.outlook.com', maxConnections: 1, reason: '', since: now(), until: now() + 60_000 });
    const contoso = await k.resolve('contoso.com');
    const fabrikam = await k.resolve('fabrikam.com');
    assert.deepEqual(contoso, { key: 'mx:*.mail.protection.outlook.com', limits: { maxConnections: 1 } });
    assert.deepEqual(fabrikam, contoso, 'one shared limit');
    assert.equal(await k.resolve('small.test'), undefined, 'other MX hosts: not overridden');
  });

  it('an override of a limits.ini [mx:] key lowers that key', async () => {
    const { k, table, now } = keys('[mx:*.mail.protection.outlook.com]\nmax_connections=10\n');
    table.set({ destination: 'mx:*.mail.protection.outlook.com', maxConnections: 2, reason: '', since: now(), until: now() + 60_000 });
    assert.deepEqual(await k.resolve('contoso.com'), { key: 'mx:*.mail.protection.outlook.com', limits: { maxConnections: 2 } });
  });
});
