import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WirePacer } from '../../../src/delivery/wire-pacer.js';
import { LocalCoordinator } from '../../../src/cluster/index.js';

const settled = async (p: Promise<void>) => {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
};

describe('WirePacer', () => {
  it('lets half the burst start at once (the admission had the whole) and makes the next wait for its turn', async () => {
    const clock = { now: () => Date.now() };
    const pacer = new WirePacer(clock, new LocalCoordinator(clock));
    const rate = { count: 10, perMs: 1000, burst: 4 };
    assert.equal(await settled(pacer.wait('d.test', rate)), true);
    assert.equal(await settled(pacer.wait('d.test', rate)), true);
    const third = pacer.wait('d.test', rate);
    assert.equal(await settled(third), false, 'the third waits 100 ms');
    await third;
    assert.equal(await settled(pacer.wait('other.test', rate)), true, 'per destination');
  });

  it('takes its turns from the coordinator, so that pacers of several processes share one line', async () => {
    const clock = { now: () => Date.now() };
    const shared = new LocalCoordinator(clock);
    const one = new WirePacer(clock, shared);
    const two = new WirePacer(clock, shared);
    const rate = { count: 10, perMs: 1000, burst: 1 };
    assert.equal(await settled(one.wait('d.test', rate)), true);
    assert.equal(await settled(two.wait('d.test', rate)), false, "the other process's pacer waits its turn");
  });

  it('counts the turns owed at the new interval when the rate changes', async () => {
    const clock = { now: () => Date.now() };
    const pacer = new WirePacer(clock, new LocalCoordinator(clock));
    await pacer.wait('d.test', { count: 1, perMs: 3_600_000, burst: 1 });
    const next = pacer.wait('d.test', { count: 100, perMs: 1000, burst: 1 });
    const first = await Promise.race([next.then(() => 'went'), new Promise((r) => setTimeout(r, 2000, 'still waiting'))]);
    assert.equal(first, 'went', 'one message owed is one interval at 100/s, not an hour');
  });
});
