import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RelayPolicy } from '../../../src/listener/relay-policy.js';

describe('RelayPolicy: who may relay without AUTH (config/relay_acl_allow)', () => {
  const policy = new RelayPolicy(['192.0.2.0/24', '10.1.2.3/32', '2001:db8:aa::/48']);

  it('allows addresses inside a listed network, to its last address', () => {
    for (const a of ['192.0.2.0', '192.0.2.17', '192.0.2.255', '10.1.2.3', '2001:db8:aa::1', '2001:db8:aa:ffff::9']) assert.ok(policy.allows(a), a);
  });

  it('refuses addresses just outside, and everyone when the list is empty', () => {
    for (const a of ['192.0.3.0', '192.0.1.255', '10.1.2.4', '2001:db8:ab::1', '::1']) assert.ok(!policy.allows(a), a);
    assert.ok(!new RelayPolicy([]).allows('127.0.0.1'));
  });

  it('knows an IPv4 client behind a dual-stack listener (::ffff:a.b.c.d) by its IPv4 address', () => {
    assert.ok(policy.allows('::ffff:192.0.2.5'));
    assert.ok(!policy.allows('::ffff:192.0.3.5'));
  });

  it('refuses what is not an address at all', () => {
    assert.ok(!policy.allows(''));
    assert.ok(!policy.allows('not-an-address'));
  });
});
