import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DnsResolver, confirmedClientName } from '../../src/dns/index.js';
import { systemClock } from '../../src/core/index.js';
import { TestDnsServer } from '../helpers/dns-server.js';

describe('reverse lookups and forward-confirmed client names against a real DNS server', () => {
  const dns = new TestDnsServer();
  let resolver: DnsResolver;

  before(async () => {
    dns
      .add('10.2.0.192.in-addr.arpa', { type: 'PTR', data: 'mail.client.test' })
      .add('mail.client.test', { type: 'A', data: '192.0.2.10' })
      .add('11.2.0.192.in-addr.arpa', { type: 'PTR', data: 'liar.client.test' })
      .add('liar.client.test', { type: 'A', data: '192.0.2.99' })
      .add('12.2.0.192.in-addr.arpa', { type: 'PTR', data: 'bad name\r\nX-Injected: yes' })
      .add('1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa', { type: 'PTR', data: 'v6.client.test' })
      .add('v6.client.test', { type: 'AAAA', data: '2001:db8::1' });
    dns.silent.add('13.2.0.192.in-addr.arpa');
    await dns.start();
    resolver = new DnsResolver({ servers: [{ host: '127.0.0.1', port: dns.port }], timeoutMs: 300, cacheMaxEntries: 100, clock: systemClock });
  });
  after(() => dns.stop());

  it('asks in-addr.arpa and ip6.arpa for PTR records', async () => {
    assert.deepEqual(await resolver.reverse('192.0.2.10'), ['mail.client.test']);
    assert.deepEqual(await resolver.reverse('::ffff:192.0.2.10'), ['mail.client.test']);
    assert.deepEqual(await resolver.reverse('2001:db8::1'), ['v6.client.test']);
    assert.deepEqual(await resolver.reverse('192.0.2.200'), [], 'NXDOMAIN is no name');
  });

  it('answers reverse lookups from the cache', async () => {
    await resolver.reverse('192.0.2.10');
    const asked = dns.queries.filter((q) => q.name === '10.2.0.192.in-addr.arpa').length;
    await resolver.reverse('192.0.2.10');
    assert.equal(dns.queries.filter((q) => q.name === '10.2.0.192.in-addr.arpa').length, asked);
  });

  it('fails a reverse lookup nobody answers with a temporary DNS error', async () => {
    await assert.rejects(resolver.reverse('192.0.2.13'), (err: Error & { code?: string }) => err.code === 'TERN_ERR_DNS_TEMPORARY');
  });

  it('confirms a name only when it resolves back to the address (Postfix forward-confirmed rDNS)', async () => {
    assert.equal(await confirmedClientName(resolver, '192.0.2.10'), 'mail.client.test');
    assert.equal(await confirmedClientName(resolver, '2001:db8::1'), 'v6.client.test');
    assert.equal(await confirmedClientName(resolver, '192.0.2.11'), undefined, 'PTR whose A points elsewhere');
    assert.equal(await confirmedClientName(resolver, '192.0.2.12'), undefined, 'PTR that is not a host name');
    assert.equal(await confirmedClientName(resolver, '192.0.2.13'), undefined, 'no answer at all');
    assert.equal(await confirmedClientName(resolver, '192.0.2.200'), undefined, 'no PTR');
  });
});
