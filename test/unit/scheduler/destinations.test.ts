import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DestinationGate } from '../../../src/scheduler/destinations.js';

class FakeClock {
  t = 1_000_000;
  now(): number {
    return this.t;
  }
}

function gate(limit = 2, backoff = { minMs: 60_000, maxMs: 240_000 }, gone = new Set<string>()) {
  const clock = new FakeClock();
  return { clock, gate: new DestinationGate(clock, () => limit, backoff, (id) => !gone.has(id)) };
}

describe('DestinationGate', () => {
  it('parks entries over the connection limit and hands them back one per finished attempt', () => {
    const { gate: g } = gate(2);
    assert.deepEqual(g.admit('d.test', 'a'), { go: true });
    assert.deepEqual(g.admit('d.test', 'b'), { go: true });
    assert.deepEqual(g.admit('d.test', 'c'), { go: false, reason: 'connection_limit' });
    assert.deepEqual(g.admit('d.test', 'd'), { go: false, reason: 'connection_limit' });
    assert.deepEqual(g.admit('other.test', 'e'), { go: true }, 'limits are per domain');
    assert.deepEqual(g.finished('d.test', false), ['c']);
    assert.deepEqual(g.admit('d.test', 'c'), { go: true });
    assert.deepEqual(g.finished('d.test', false), ['d']);
  });

  it('gives a freed slot to the next entry still waiting, not to one held or removed meanwhile', () => {
    const gone = new Set<string>();
    const { gate: g } = gate(1, undefined, gone);
    assert.deepEqual(g.admit('d.test', 'a'), { go: true });
    assert.deepEqual(g.admit('d.test', 'b'), { go: false, reason: 'connection_limit' });
    assert.deepEqual(g.admit('d.test', 'c'), { go: false, reason: 'connection_limit' });
    gone.add('b'); // the operator held it
    assert.deepEqual(g.finished('d.test', false), ['c'], 'c gets the slot; nothing is left waiting with nothing in flight');
  });

  it('backs a dead destination off, lets one probe through after the backoff, doubles on failure, and frees everyone on success', () => {
    const { gate: g, clock } = gate(5);
    g.admit('d.test', 'a');
    g.admit('d.test', 'b');
    assert.deepEqual(g.finished('d.test', true), []);
    assert.equal(g.closedUntil('d.test'), clock.t + 60_000);
    assert.equal(g.wakeAt(), clock.t + 60_000);
    assert.deepEqual(g.finished('d.test', true), [], 'b failed too: the backoff doubles');
    assert.equal(g.closedUntil('d.test'), clock.t + 120_000);
    assert.deepEqual(g.admit('d.test', 'c'), { go: false, reason: 'backoff' });
    assert.deepEqual(g.admit('d.test', 'd'), { go: false, reason: 'backoff' });
    clock.t += 119_999;
    assert.deepEqual(g.lapse().released, [], 'nothing lifts before its time');
    clock.t += 1;
    assert.deepEqual(g.lapse().released, ['c', 'd']);
    assert.deepEqual(g.admit('d.test', 'c'), { go: true }, 'the first one back is the probe');
    assert.deepEqual(g.admit('d.test', 'd'), { go: false, reason: 'backoff' }, 'the rest wait for its verdict');
    assert.deepEqual(g.finished('d.test', true), []);
    assert.equal(g.closedUntil('d.test'), clock.t + 240_000, 'doubled, up to maxMs');
    clock.t += 240_000;
    assert.deepEqual(g.lapse().released, ['d']);
    assert.deepEqual(g.admit('d.test', 'd'), { go: true });
    g.admit('d.test', 'e');
    assert.deepEqual(g.finished('d.test', false), ['e'], 'the probe got a session');
    assert.equal(g.closedUntil('d.test'), undefined);
  });

  it('turns entries waiting for a slot into entries waiting for the backoff when the destination dies', () => {
    const { gate: g, clock } = gate(1);
    g.admit('d.test', 'a');
    assert.deepEqual(g.admit('d.test', 'b'), { go: false, reason: 'connection_limit' });
    assert.deepEqual(g.finished('d.test', true), []);
    clock.t += 60_000;
    assert.deepEqual(g.lapse().released, ['b']);
  });

  it('resetBackoff forgets a dead destination (one, or all) and returns who waited', () => {
    const { gate: g } = gate(5);
    for (const d of ['x.test', 'y.test']) {
      g.admit(d, `${d}-1`);
      g.finished(d, true);
      g.admit(d, `${d}-2`);
    }
    assert.deepEqual(g.resetBackoff('x.test'), ['x.test-2']);
    assert.equal(g.closedUntil('x.test'), undefined);
    assert.deepEqual(g.admit('x.test', 'x.test-2'), { go: true }, 'no backoff, no probe: it goes');
    assert.deepEqual(g.admit('x.test', 'x.test-3'), { go: true });
    assert.deepEqual(g.resetBackoff(), ['y.test-2']);
    assert.deepEqual(g.resetBackoff(), []);
  });

  it('parks everything of a suspended domain until resume, whatever else holds', () => {
    const { gate: g } = gate(5);
    g.suspend({ domain: 'd.test', reason: 'migration', since: 0 });
    assert.deepEqual(g.admit('d.test', 'a'), { go: false, reason: 'suspended' });
    assert.deepEqual(g.admit('d.test', 'b'), { go: false, reason: 'suspended' });
    assert.deepEqual(g.resetBackoff('d.test'), [], 'a flush does not lift a suspension');
    assert.deepEqual(g.suspensions(), [{ domain: 'd.test', reason: 'migration', since: 0 }]);
    assert.deepEqual(g.resume('d.test'), ['a', 'b']);
    assert.equal(g.resume('d.test'), undefined, 'not suspended any more');
    assert.deepEqual(g.suspensions(), []);
    assert.deepEqual(g.admit('d.test', 'a'), { go: true });
  });

  it('lifts a suspension with an end by itself, reporting it', () => {
    const { gate: g, clock } = gate(5);
    const s = { domain: 'd.test', reason: '', since: clock.t, until: clock.t + 1000 };
    g.suspend(s);
    g.admit('d.test', 'a');
    assert.equal(g.wakeAt(), clock.t + 1000);
    clock.t += 999;
    assert.deepEqual(g.lapse(), { released: [], expired: [] });
    clock.t += 1;
    assert.deepEqual(g.suspensions(), [], 'an expired suspension is not listed');
    assert.deepEqual(g.lapse(), { released: ['a'], expired: [s] });
    assert.equal(g.wakeAt(), undefined);
  });

  it('checks a shaped entry for suspension and backoff only, and tells why each parked entry waits', () => {
    const { gate: g } = gate(1);
    assert.deepEqual(g.admit('d.test', 'a', true), { go: true });
    assert.deepEqual(g.admit('d.test', 'b', true), { go: true }, 'its sessions are the coordinator\'s to count');
    g.suspend({ domain: 'd.test', reason: '', since: 0 });
    assert.deepEqual(g.admit('d.test', 'c', true), { go: false, reason: 'suspended' });
    assert.equal(g.reasonOf('c'), 'suspended');
    assert.equal(g.blocks('d.test', 'a'), true, 'a, waiting for its slot meanwhile, must not start now');
    assert.deepEqual(g.parkedCounts(), { suspended: 1, backoff: 0, connection_limit: 0 });
    g.resume('d.test');
    assert.equal(g.reasonOf('c'), undefined);
    assert.equal(g.blocks('d.test', 'a'), false);
  });

  it('lets the probe of a backed-off destination start when its slot comes, and no other', () => {
    const { gate: g, clock } = gate(5);
    g.admit('d.test', 'x');
    g.finished('d.test', true);
    clock.t += 60_000;
    g.lapse();
    assert.deepEqual(g.admit('d.test', 'p', true), { go: true }, 'the probe');
    assert.equal(g.blocks('d.test', 'p'), false);
    assert.equal(g.blocks('d.test', 'q'), true, 'the rest wait for its verdict');
    g.started('d.test', 'p');
    assert.deepEqual(g.finished('d.test', false), [], 'the destination answers again');
    assert.equal(g.blocks('d.test', 'q'), false);
  });
});
