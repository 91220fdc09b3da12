import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connectionFigures, firstAtLeast, largestGap, maxAtOnce, rateFigures, slotUse, tally, windowCounts } from '../../../bench/sink-figures.js';

describe('what a destination saw, from the sink\'s times (bench figures)', () => {
  it('counts arrivals in 1-s windows sliding by 100 ms, a window open at its start and closed at its end', () => {
    const times = [0, 500, 999, 1000, 1999, 2000];
    assert.deepEqual(windowCounts(times, 1000, 1000), [3, 2]);
    const sliding = windowCounts(times, 1000, 100);
    assert.equal(sliding.length, 11);
    assert.equal(sliding[0], 3);
    assert.equal(sliding[10], 2, '[1000, 2000) holds 1000 and 1999; 2000 is the next window\'s');
    assert.equal(Math.max(...sliding), 3);
    assert.deepEqual(windowCounts([], 1000, 100), []);
    assert.deepEqual(windowCounts([5, 10, 1200], 1000, 500, 0, 1999), [2, 1, 1]);
  });

  it('a rate of 100/s with a burst of 10 as GCRA lets it through meets the figure; 300/s from three unshared nodes does not', () => {
    const gcra = [...Array(10).fill(0), ...Array.from({ length: 990 }, (_, i) => (i + 1) * 10)];
    const ok = rateFigures(gcra, 100, 10);
    assert.equal(ok.ok, true);
    assert.equal(ok.average_per_s, 100);
    assert.equal(ok.max_1s_window, 109);
    const thrice = Array.from({ length: 3000 }, (_, i) => Math.floor(i / 3) * 10);
    const bad = rateFigures(thrice, 100, 10);
    assert.equal(bad.ok, false);
    assert.ok(Number(bad.average_per_s) > 290);
  });

  it('counts sessions open at once, a close before an open at the same millisecond, and only inside a span when given one', () => {
    const sessions = [
      { openedAt: 0, closedAt: 100 },
      { openedAt: 100, closedAt: 200 },
      { openedAt: 150, closedAt: 300 },
      { openedAt: 250 },
    ];
    assert.equal(maxAtOnce(sessions), 2);
    assert.equal(maxAtOnce(sessions, 0, 120), 1);
    assert.equal(maxAtOnce([...sessions, { openedAt: 260, closedAt: 270 }]), 3);
    assert.equal(maxAtOnce(sessions, 310, 400), 1, 'a session still open counts from the span\'s start');
  });

  it('finds when a slot freed by a killed node is used again: the first moment n sessions of the others are open', () => {
    const others = [
      { openedAt: 0, closedAt: 10_000 },
      { openedAt: 500, closedAt: 900 },
      { openedAt: 4_200, closedAt: 6_000 },
    ];
    assert.equal(firstAtLeast(others, 2, 1000), 4200);
    assert.equal(firstAtLeast(others, 2, 0), 500);
    assert.equal(firstAtLeast(others, 3, 0), undefined);
    assert.equal(firstAtLeast(others, 2, 1000, 4000), undefined);
  });

  it('measures how much of a connection limit was used, and the longest time without an arrival around an event', () => {
    assert.equal(slotUse([{ openedAt: 0, closedAt: 1000 }, { openedAt: 500, closedAt: 2000 }], 2, 0, 1000), 0.75);
    assert.equal(largestGap([100, 200, 900], 0, 1000), 700);
    assert.equal(largestGap([], 0, 1000), 1000);
    assert.equal(largestGap([10, 20], 0, 1000), 980, 'from the last arrival to the span\'s end');
    const c = connectionFigures([0, 1000], [{ openedAt: 0, closedAt: 1000, transactions: 2 }], 2);
    assert.equal(c.max_sessions_at_once, 1);
    assert.equal(c.slot_use_pct, 50);
    assert.equal(c.ok, false);
  });

  it('tallies acknowledged ids at the sink: missing, twice, and ones it never expected', () => {
    const t = tally(['a', 'b', 'c'], ['a', 'b', 'b', 'x', undefined]);
    assert.deepEqual(t.missing, ['c']);
    assert.deepEqual(t.duplicated, ['b']);
    assert.equal(t.unexpected, 2);
  });
});
