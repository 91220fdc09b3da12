import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rateShare, slotShare } from '../../../src/cluster/index.js';

describe('a worker\'s local share of a limit (primary not answering)', () => {
  it('splits connection slots so that the shares add up to the limit exactly: 2 stays 2 with 8 workers', () => {
    for (const workers of [1, 2, 3, 4, 8, 16]) {
      for (const max of [1, 2, 3, 7, 20, 300, 1001]) {
        for (const key of ['orange.fr', 'gmail.com', 'site:outlook']) {
          const shares = [...Array(workers).keys()].map((i) => slotShare(key, max, workers, i));
          assert.equal(shares.reduce((a, b) => a + b, 0), max, `${key} max=${max} workers=${workers}`);
        }
      }
    }
    assert.equal([...Array(8).keys()].filter((i) => slotShare('orange.fr', 2, 8, i) > 0).length <= 2, true);
  });

  it('spreads the slots of different destinations over different workers', () => {
    const owners = new Set(['a.example', 'b.example', 'c.example', 'd.example', 'e.example', 'f.example'].map((k) => [...Array(4).keys()].find((i) => slotShare(k, 1, 4, i) === 1)));
    assert.ok(owners.size >= 2, 'one slot each: not all owned by the same worker');
  });

  it('splits a message rate and its burst so that they never add up to more than configured', () => {
    for (const workers of [2, 3, 4, 8]) {
      for (const count of [1, 10, 100, 7]) {
        const parts = [...Array(workers).keys()].map((i) => rateShare('gmail.com', { count, perMs: 1000, burst: 5 }, workers, i));
        assert.equal(parts.reduce((n, p) => n + p.count, 0), count);
        assert.equal(parts.reduce((n, p) => n + p.burst, 0), 5);
      }
    }
  });
});
