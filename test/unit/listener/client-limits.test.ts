import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ClientLimiter } from '../../../src/listener/client-limits.js';

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

describe('ClientLimiter', () => {
  it('caps connections open at once per address, and frees a slot when one closes', () => {
    const limiter = new ClientLimiter(clock());
    const limit = { maxConnections: 2, maxPerMinute: 0 };
    assert.equal(limiter.admit('192.0.2.1', limit), undefined);
    assert.equal(limiter.admit('192.0.2.1', limit), undefined);
    assert.deepEqual(limiter.admit('192.0.2.1', limit), { code: 421, enhanced: '4.7.0', text: 'Too many connections from your address, try again later' });
    assert.equal(limiter.admit('192.0.2.2', limit), undefined, 'another address is not affected');
    limiter.release('192.0.2.1');
    assert.equal(limiter.admit('192.0.2.1', limit), undefined);
  });

  it('caps connection attempts per minute, refused ones included, and forgets them after the minute', () => {
    const c = clock();
    const limiter = new ClientLimiter(c);
    const limit = { maxConnections: 0, maxPerMinute: 3 };
    for (let i = 0; i < 3; i++) {
      assert.equal(limiter.admit('192.0.2.1', limit), undefined);
      limiter.release('192.0.2.1');
    }
    assert.equal(limiter.admit('192.0.2.1', limit)?.code, 421);
    c.t += 60_000;
    assert.equal(limiter.admit('192.0.2.1', limit), undefined);
  });

  it('treats 0 as no limit', () => {
    const limiter = new ClientLimiter(clock());
    for (let i = 0; i < 500; i++) assert.equal(limiter.admit('127.0.0.1', { maxConnections: 0, maxPerMinute: 0 }), undefined);
  });

  it('stays bounded whatever the number of addresses, and expires idle entries', () => {
    const c = clock();
    const limiter = new ClientLimiter(c, 100);
    for (let i = 0; i < 10_000; i++) {
      const address = `2001:db8::${i.toString(16)}`;
      limiter.admit(address, { maxConnections: 5, maxPerMinute: 5 });
      limiter.release(address);
    }
    assert.ok(limiter.size <= 100, `size ${limiter.size}`);
    c.t += 61_000;
    for (let i = 0; i < 10; i++) limiter.admit(`198.51.100.${i}`, { maxConnections: 5, maxPerMinute: 5 });
    assert.equal(limiter.size, 10, 'the idle entries of the past minute are swept, a few per connection');
  });

  it('keeps an address with open connections while the table is full', () => {
    const limiter = new ClientLimiter(clock(), 3);
    const limit = { maxConnections: 1, maxPerMinute: 0 };
    assert.equal(limiter.admit('192.0.2.1', limit), undefined);
    for (let i = 0; i < 50; i++) limiter.admit(`198.51.100.${i}`, { maxConnections: 0, maxPerMinute: 0 }), limiter.release(`198.51.100.${i}`);
    assert.equal(limiter.admit('192.0.2.1', limit)?.code, 421, 'its count survived the evictions');
  });
});
