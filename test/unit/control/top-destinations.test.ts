import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TopDestinations } from '../../../src/control/top-destinations.js';

const MINUTE = 60_000;

function top(slots = 3) {
  let now = 0;
  const evicted: string[] = [];
  const t = new TopDestinations({ slots, candidates: slots * 10, halfLifeMs: 10 * MINUTE, minTenureMs: 10 * MINUTE, now: () => now, onEvict: (d) => evicted.push(d) });
  return { t, evicted, advance: (ms: number) => (now += ms) };
}

describe('TopDestinations: at most N destination labels, the rest as "other"', () => {
  it('gives the first N destinations their own label and counts the rest as other', () => {
    const { t } = top(3);
    assert.deepEqual(['a.test', 'b.test', 'c.test', 'd.test', 'e.test'].map((d) => t.label(d)), ['a.test', 'b.test', 'c.test', 'other', 'other']);
    assert.equal(t.label('a.test'), 'a.test', 'a holder keeps its label');
    assert.deepEqual(t.labelled().sort(), ['a.test', 'b.test', 'c.test']);
  });

  it('never holds more than N labels, however many destinations come', () => {
    const { t } = top(5);
    for (let i = 0; i < 10_000; i++) t.label(`d${i % 997}.test`);
    assert.equal(t.labelled().length, 5);
  });

  it('hands the quietest holder\'s label to a destination that became busy, once the holder has had it for the tenure', () => {
    const { t, evicted, advance } = top(2);
    t.label('early1.test');
    t.label('early2.test');
    for (let i = 0; i < 5; i++) assert.equal(t.label('busy.test'), 'other', 'within the tenure the holders keep their labels');
    advance(11 * MINUTE);
    for (let i = 0; i < 3; i++) t.label('early2.test');
    assert.equal(t.label('busy.test'), 'busy.test');
    assert.deepEqual(evicted, ['early1.test'], 'the holder with the lowest count went');
    assert.deepEqual(t.labelled().sort(), ['busy.test', 'early2.test']);
    assert.equal(t.label('early1.test'), 'other', 'an evicted destination counts as other from then on');
  });

  it('keeps a busy destination out of "other" although many rare ones pass by (Space-Saving)', () => {
    const { t, advance } = top(2);
    t.label('a.test');
    t.label('b.test');
    advance(11 * MINUTE);
    for (let i = 0; i < 2000; i++) {
      t.label(`rare${i}.test`);
      if (i % 10 === 0) t.label('steady.test');
    }
    assert.ok(t.labelled().includes('steady.test'), `labelled: ${t.labelled().join(', ')}`);
  });
});
