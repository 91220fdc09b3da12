import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCoordinator } from '../../../src/cluster/index.js';
import type { DestinationLimits } from '../../../src/cluster/index.js';

class FakeClock {
  t = 1_000_000;
  now(): number {
    return this.t;
  }
}

const perSecond = (count: number, burst: number): DestinationLimits => ({ maxConnections: 2, rate: { count, perMs: 1000, burst } });

describe('LocalCoordinator', () => {
  it('grants a burst at once after an idle spell, then one token per interval', async () => {
    const clock = new FakeClock();
    const c = new LocalCoordinator(clock);
    const limits = perSecond(10, 3);
    assert.deepEqual(await c.takeTokens('d.test', limits, 5), { granted: 3 }, 'the burst, not more');
    const refused = await c.takeTokens('d.test', limits, 1);
    assert.equal(refused.granted, 0);
    assert.equal(refused.retryAt, clock.t + 100, 'the next token is one interval (100 ms) on');
    clock.t += 99;
    assert.equal((await c.takeTokens('d.test', limits, 1)).granted, 0);
    clock.t += 1;
    assert.deepEqual(await c.takeTokens('d.test', limits, 5), { granted: 1 });
    assert.deepEqual(await c.takeTokens('other.test', limits, 1), { granted: 1 }, 'rates are per key');
  });

  it('never lets a window of one second hold more than rate + burst', async () => {
    const clock = new FakeClock();
    const c = new LocalCoordinator(clock);
    const limits = perSecond(100, 10);
    const grants: number[] = [];
    for (let ms = 0; ms < 10_000; ms += 7) {
      clock.t = 1_000_000 + ms;
      const { granted } = await c.takeTokens('d.test', limits, 3);
      for (let i = 0; i < granted; i++) grants.push(ms);
    }
    for (let start = 0; start < 9_000; start += 50) {
      const inWindow = grants.filter((t) => t >= start && t < start + 1000).length;
      assert.ok(inWindow <= 110, `window at ${start} ms holds ${inWindow}`);
    }
    assert.ok(grants.length >= 1000 && grants.length <= 1010, `10 s at 100/s gave ${grants.length}`);
  });

  it('takes back tokens a session did not use, but saves none up beyond the burst', async () => {
    const clock = new FakeClock();
    const c = new LocalCoordinator(clock);
    const limits = perSecond(1, 1);
    assert.deepEqual(await c.takeTokens('d.test', limits, 1), { granted: 1 });
    assert.equal((await c.takeTokens('d.test', limits, 1)).granted, 0);
    c.returnTokens('d.test', limits, 1);
    assert.deepEqual(await c.takeTokens('d.test', limits, 1), { granted: 1 }, 'the returned token goes again');
    c.returnTokens('d.test', limits, 50);
    assert.deepEqual(await c.takeTokens('d.test', limits, 5), { granted: 1 }, 'returning more than was taken gives no extra burst');
  });

  it('grants everything when the destination has no rate', async () => {
    const c = new LocalCoordinator(new FakeClock());
    assert.deepEqual(await c.takeTokens('d.test', { maxConnections: 1 }, 7), { granted: 7 });
  });

  it('holds connection slots up to the limit; acquiring and releasing are idempotent by lease id', async () => {
    const c = new LocalCoordinator(new FakeClock());
    const limits = { maxConnections: 2 };
    const a = await c.acquireSlot('d.test', limits, 'a');
    assert.ok(a.granted);
    assert.ok((await c.acquireSlot('d.test', limits, 'a')).granted, 'the same lease id again');
    assert.equal(c.held('d.test'), 1, 'holds one slot, not two');
    assert.ok((await c.acquireSlot('d.test', limits, 'b')).granted);
    assert.deepEqual(await c.acquireSlot('d.test', limits, 'c'), { granted: false, reason: 'connection_limit' });
    c.releaseSlot(a.lease);
    c.releaseSlot(a.lease);
    c.releaseSlot({ key: 'd.test', id: 'unknown' });
    assert.equal(c.held('d.test'), 1);
    assert.ok((await c.acquireSlot('d.test', limits, 'c')).granted);
    assert.equal((await c.acquireSlot('d.test', limits, 'd')).granted, false);
  });

  it('lets holders finish when the limit is lowered, and grants again once below it', async () => {
    const c = new LocalCoordinator(new FakeClock());
    const a = await c.acquireSlot('d.test', { maxConnections: 3 }, 'a');
    await c.acquireSlot('d.test', { maxConnections: 3 }, 'b');
    assert.equal((await c.acquireSlot('d.test', { maxConnections: 1 }, 'c')).granted, false);
    assert.ok(a.granted);
    c.releaseSlot(a.lease);
    assert.equal((await c.acquireSlot('d.test', { maxConnections: 1 }, 'c')).granted, false, 'b still holds the one slot');
  });

  it('tells listeners once per freed slot, after the release returns, until they unsubscribe', async () => {
    const c = new LocalCoordinator(new FakeClock());
    const freed: string[] = [];
    const off = c.onFreed((key) => freed.push(key));
    const a = await c.acquireSlot('d.test', { maxConnections: 1 }, 'a');
    assert.ok(a.granted);
    c.releaseSlot(a.lease);
    assert.deepEqual(freed, [], 'not from inside releaseSlot');
    await Promise.resolve();
    assert.deepEqual(freed, ['d.test']);
    c.releaseSlot(a.lease);
    await Promise.resolve();
    assert.deepEqual(freed, ['d.test'], 'a second release of the same lease frees nothing');
    off();
    const b = await c.acquireSlot('d.test', { maxConnections: 1 }, 'b');
    assert.ok(b.granted);
    c.releaseSlot(b.lease);
    await Promise.resolve();
    assert.deepEqual(freed, ['d.test']);
  });
});

describe('LocalCoordinator, limits changed live', () => {
  it('keeps the messages owed but counts them at the new rate', async () => {
    const clock = new FakeClock();
    const c = new LocalCoordinator(clock);
    const hourly: DestinationLimits = { maxConnections: 1, rate: { count: 1, perMs: 3_600_000, burst: 1 } };
    assert.equal((await c.takeTokens('d.test', hourly, 1)).granted, 1);
    assert.equal((await c.takeTokens('d.test', hourly, 1)).granted, 0, 'the next one is an hour away at 1/h');
    const fast = perSecond(100, 1);
    assert.equal((await c.takeTokens('d.test', fast, 1)).granted, 0, 'one message owed: 10 ms at 100/s');
    clock.t += 10;
    assert.equal((await c.takeTokens('d.test', fast, 1)).granted, 1);
  });
});
