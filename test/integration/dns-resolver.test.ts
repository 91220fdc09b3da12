import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DnsResolver, resolveMxPlan } from '../../src/dns/index.js';
import { systemClock } from '../../src/core/index.js';
import { TestDnsServer } from '../helpers/dns-server.js';

describe('DNS resolver and MX plan against a real DNS server on loopback', () => {
  const dns = new TestDnsServer();
  let resolver: DnsResolver;
  const plan = (domain: string, opts: Partial<Parameters<typeof resolveMxPlan>[2]> = {}) =>
    resolveMxPlan(resolver, domain, { inetPrefer: 'default', localMxOk: true, random: () => 0.99, ...opts });

  before(async () => {
    dns
      .add('prefs.test', { type: 'MX', preference: 20, exchange: 'b.prefs.test' }, { type: 'MX', preference: 10, exchange: 'a.prefs.test' }, { type: 'MX', preference: 20, exchange: 'c.prefs.test' })
      .add('a.prefs.test', { type: 'A', data: '192.0.2.1' })
      .add('b.prefs.test', { type: 'A', data: '192.0.2.2' })
      .add('c.prefs.test', { type: 'A', data: '192.0.2.3' })
      .add('dual.test', { type: 'A', data: '192.0.2.10' }, { type: 'AAAA', data: '2001:db8::10' })
      .add('big.test', { type: 'MX', preference: 5, exchange: 'mx.big.test' })
      .add('mx.big.test', { type: 'A', data: '192.0.2.20' })
      .add('local.test', { type: 'MX', preference: 5, exchange: 'mx.local.test' })
      .add('mx.local.test', { type: 'A', data: '10.1.2.3' })
      .add('nullmx.test', { type: 'MX', preference: 0, exchange: '.' })
      .add('ttl.test', { type: 'A', data: '192.0.2.30', ttl: 300 });
    dns.servfail.add('broken.test');
    dns.truncate.add('big.test');
    await dns.start();
    resolver = new DnsResolver({ servers: [{ host: '127.0.0.1', port: dns.port }], timeoutMs: 1000, cacheMaxEntries: 100, clock: systemClock });
  });
  after(() => dns.stop());

  it('orders MX hosts by preference', async () => {
    const p = await plan('prefs.test');
    assert.ok(p.ok);
    assert.deepEqual(p.hosts.map((h) => h.preference), [10, 20, 20]);
    assert.equal(p.hosts[0].name, 'a.prefs.test');
    assert.deepEqual(new Set(p.hosts.slice(1).map((h) => h.name)), new Set(['b.prefs.test', 'c.prefs.test']));
  });

  it('shuffles hosts of equal preference', async () => {
    const low = await resolveMxPlan(resolver, 'prefs.test', { inetPrefer: 'default', localMxOk: true, random: () => 0 });
    const high = await resolveMxPlan(resolver, 'prefs.test', { inetPrefer: 'default', localMxOk: true, random: () => 0.99 });
    assert.ok(low.ok && high.ok);
    assert.notDeepEqual(low.hosts.map((h) => h.name), high.hosts.map((h) => h.name));
  });

  it('uses the domain itself when there is no MX, ordering families by inet_prefer', async () => {
    const v6 = await plan('dual.test');
    assert.ok(v6.ok && v6.implicit);
    assert.deepEqual(v6.hosts[0].addresses, ['2001:db8::10', '192.0.2.10']);
    const v4 = await plan('dual.test', { inetPrefer: 'v4' });
    assert.ok(v4.ok);
    assert.deepEqual(v4.hosts[0].addresses, ['192.0.2.10', '2001:db8::10']);
  });

  it('retries over TCP when the UDP answer is truncated', async () => {
    const p = await plan('big.test');
    assert.ok(p.ok);
    assert.deepEqual(p.hosts[0].addresses, ['192.0.2.20']);
    assert.ok(dns.queries.some((q) => q.name === 'big.test' && q.transport === 'tcp'));
  });

  it('fails permanently for a null MX and NXDOMAIN, temporarily for SERVFAIL', async () => {
    const nullmx = await plan('nullmx.test');
    assert.ok(!nullmx.ok && nullmx.permanent);
    assert.equal(nullmx.reply.code, 556);
    assert.equal(nullmx.reply.enhanced, '5.1.10');
    const nx = await plan('nowhere.test');
    assert.ok(!nx.ok && nx.permanent);
    assert.equal(nx.reply.enhanced, '5.1.2');
    const sf = await plan('broken.test');
    assert.ok(!sf.ok && !sf.permanent);
    assert.equal(sf.reply.code, 451);
  });

  it('refuses private and loopback addresses unless local_mx_ok', async () => {
    const refused = await plan('local.test', { localMxOk: false });
    assert.ok(!refused.ok && refused.permanent);
    assert.equal(refused.reply.enhanced, '5.4.4');
    const allowed = await plan('local.test', { localMxOk: true });
    assert.ok(allowed.ok);
  });

  it('caches answers by TTL', async () => {
    await resolver.query('ttl.test', 'A');
    const before = dns.queries.filter((q) => q.name === 'ttl.test').length;
    const again = await resolver.query('ttl.test', 'A');
    assert.equal(dns.queries.filter((q) => q.name === 'ttl.test').length, before);
    assert.equal(again.answers.length, 1);
  });

  it('times out to a temporary failure when no server answers', async () => {
    const silent = new DnsResolver({ servers: [{ host: '127.0.0.1', port: 9 }], timeoutMs: 300, cacheMaxEntries: 0, clock: systemClock });
    const p = await resolveMxPlan(silent, 'good.test', { inetPrefer: 'default', localMxOk: true });
    assert.ok(!p.ok && !p.permanent);
  });
});
