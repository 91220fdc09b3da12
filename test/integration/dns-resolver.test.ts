import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DnsResolver, resolveMxPlan } from '../../src/dns/index.js';
import { ErrorCode, systemClock } from '../../src/core/index.js';
import type { DnsAnswer } from '../../src/dns/index.js';
import { FORGED_ADDRESS, TestDnsServer } from '../helpers/dns-server.js';
import type { Tamper } from '../helpers/dns-server.js';

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

  it('tells onFailure of each lookup that failed, with why: SERVFAIL, no answer in time; never of an answer or NXDOMAIN', async () => {
    const failures: [string, string][] = [];
    const onFailure = (type: string, reason: string) => failures.push([type, reason]);
    dns.add('quiet-for-metrics.test', { type: 'A', data: '192.0.2.50' });
    dns.silent.add('quiet-for-metrics.test');
    const watched = new DnsResolver({ servers: [{ host: '127.0.0.1', port: dns.port }], timeoutMs: 300, cacheMaxEntries: 0, clock: systemClock, onFailure });
    await assert.rejects(watched.query('broken.test', 'MX'));
    await assert.rejects(watched.query('quiet-for-metrics.test', 'A'));
    assert.equal((await watched.query('prefs.test', 'MX')).answers.length, 3);
    assert.equal((await watched.query('nowhere-for-metrics.test', 'A')).rcode, 'NXDOMAIN');
    assert.deepEqual(failures, [
      ['MX', 'servfail'],
      ['A', 'timeout'],
    ]);
  });

  describe('replies that are not the answer to the query sent', () => {
    const fresh = (use0x20 = false) =>
      new DnsResolver({ servers: [{ host: '127.0.0.1', port: dns.port }], timeoutMs: 1000, cacheMaxEntries: 0, clock: systemClock, use0x20 });
    const addresses = (a: DnsAnswer) => a.answers.map((r) => ('data' in r ? r.data : undefined));
    const temporary = (err: Error & { code?: string }) => err.code === ErrorCode.DNS_TEMPORARY;
    const hostile = (name: string, tamper: Tamper) => {
      dns.add(name, { type: 'A', data: '192.0.2.40' });
      dns.tamper.set(name, tamper);
      return name;
    };

    const forgeries: Tamper['forge'][] = ['other-port', 'other-address', 'wrong-id', 'other-question'];
    for (const forge of forgeries) {
      it(`ignores a forged reply (${forge}) and takes the real one after it`, async () => {
        const name = hostile(`then-real.${forge}.test`, { forge });
        const got = addresses(await fresh().query(name, 'A'));
        assert.ok(!got.includes(FORGED_ADDRESS), 'the forged answer was taken');
        assert.deepEqual(got, ['192.0.2.40']);
      });

      it(`ignores a forged reply (${forge}) and fails temporarily when no real one comes`, async () => {
        const name = hostile(`forged-only.${forge}.test`, { forge, withhold: true });
        await assert.rejects(fresh().query(name, 'A'), temporary);
        assert.ok(dns.queries.some((q) => q.name === name), 'the query did reach the server');
      });
    }

    it('numbers queries with random ids, not in sequence', async () => {
      const resolver = fresh();
      const names = Array.from({ length: 8 }, (_, i) => `ids${i}.test`);
      for (const name of names) await resolver.query(name, 'A');
      const ids = names.map((name) => dns.queries.find((q) => q.name === name)!.id);
      const steps = ids.slice(1).map((id, i) => (id - ids[i] + 0x10000) % 0x10000);
      assert.ok(steps.some((s) => s !== 1), `ids ${ids.join(' ')}`);
      assert.ok(new Set(ids).size > 1, `ids ${ids.join(' ')}`);
    });

    it('with use_0x20, sends names in random case and takes answers that echo it, over UDP and TCP', async () => {
      dns.add('zerox-twenty-casing.test', { type: 'A', data: '192.0.2.41' });
      const resolver = fresh(true);
      for (let i = 0; i < 3; i++) assert.deepEqual(addresses(await resolver.query('zerox-twenty-casing.test', 'A')), ['192.0.2.41']);
      const sent = dns.queries.filter((q) => q.name === 'zerox-twenty-casing.test').map((q) => q.sentName);
      assert.ok(sent.some((n) => n !== n.toLowerCase()), `sent as ${sent.join(' ')}`);
      assert.ok(new Set(sent).size > 1, `sent as ${sent.join(' ')}`);
      assert.deepEqual(addresses(await resolver.query('mx.big.test', 'A')), ['192.0.2.20']);
      const overTcp = () => dns.queries.filter((q) => q.name === 'big.test' && q.transport === 'tcp').length;
      const before = overTcp();
      const big = await resolver.query('big.test', 'MX');
      assert.equal(big.answers.length, 1, 'truncated over UDP, answered over TCP');
      assert.equal(overTcp(), before + 1);
    });

    it('with use_0x20, refuses a server that answers with the name in lower case; without, accepts it', async () => {
      const name = hostile('lowercasing-forwarder.test', { lowercaseQuestion: true });
      await assert.rejects(fresh(true).query(name, 'A'), temporary);
      assert.deepEqual(addresses(await fresh(false).query(name, 'A')), ['192.0.2.40']);
    });
  });
});
