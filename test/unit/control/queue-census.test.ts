import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { QueueCensus } from '../../../src/control/queue-census.js';
import type { CensusSource } from '../../../src/control/queue-census.js';
import type { EntryHead } from '../../../src/spool/index.js';

function head(id: string, domain: string, queuedAt: number, more: Partial<EntryHead> = {}): EntryHead {
  return { id, messageId: id, domain, queuedAt, nextAttemptAt: queuedAt, attempts: 0, tempFailures: 0, ...more };
}

/** A queue of heads in a Map, as the scheduler keeps them. */
function queue(heads: EntryHead[], inFlight = new Set<string>()): CensusSource & { items: Map<string, EntryHead> } {
  const items = new Map(heads.map((h) => [h.id, h]));
  return { items, all: () => items.values(), isInFlight: (id) => inFlight.has(id), get size() { return items.size; } };
}

const options = (now: () => number, sliceSize = 10_000) => ({ sliceSize, topDomains: 3, reuseFactor: 10, minReuseMs: 1000, now });

describe('QueueCensus: queue gauges from the heads, in slices', () => {
  it('counts entries and the oldest per state, and the destinations with the most entries', async () => {
    const q = queue(
      [
        head('a.1', 'a.test', 100),
        head('b.1', 'b.test', 50, { tempFailures: 2 }),
        head('b.2', 'b.test', 70, { tempFailures: 1 }),
        head('c.1', 'c.test', 30, { held: true }),
        head('c.2', 'c.test', 200),
        head('c.3', 'c.test', 20),
        head('d.1', 'd.test', 10),
      ],
      new Set(['d.1']),
    );
    const c = await new QueueCensus(q, options(() => 1000)).current();
    assert.deepEqual(c.entries, { scheduled: 3, deferred: 2, held: 1, 'in-flight': 1 });
    assert.deepEqual(c.oldestQueuedAt, { scheduled: 20, deferred: 50, held: 30, 'in-flight': 10 });
    assert.deepEqual(c.topDomains, [
      ['c.test', 3],
      ['b.test', 2],
      ['a.test', 1],
    ]);
  });

  it('has no oldest entry for an empty state', async () => {
    const c = await new QueueCensus(queue([head('a.1', 'a.test', 5)]), options(() => 1000)).current();
    assert.equal(c.oldestQueuedAt.held, undefined);
    assert.equal(c.entries.held, 0);
  });

  it('counts a small queue afresh at every scrape', async () => {
    const q = queue([head('a.1', 'a.test', 5)]);
    const census = new QueueCensus(q, options(() => 1000));
    assert.equal((await census.current()).entries.scheduled, 1);
    q.items.set('a.2', head('a.2', 'a.test', 6));
    assert.equal((await census.current()).entries.scheduled, 2);
  });

  it('walks a queue bigger than a slice with turns of the event loop between slices, and gets the same counts', async () => {
    const heads = Array.from({ length: 25_000 }, (_, i) => head(`m${i}.1`, `d${i % 7}.test`, 1_000_000 - i, { tempFailures: i % 2 }));
    let turns = 0;
    const ticker = setInterval(() => turns++, 0);
    const c = await new QueueCensus(queue(heads), options(() => 2_000_000, 1000)).current();
    clearInterval(ticker);
    assert.equal(c.entries.scheduled + c.entries.deferred, 25_000);
    assert.equal(c.entries.deferred, 12_500);
    assert.equal(c.oldestQueuedAt.deferred, 1_000_000 - 24_999);
    assert.equal(c.topDomains.length, 3);
    assert.ok(turns > 0, 'timers ran while the census walked');
  });

  it('shares one walk among scrapes that come during it, and reuses a big census while it is young', async () => {
    let now = 0;
    const q = queue(Array.from({ length: 3000 }, (_, i) => head(`m${i}.1`, 'a.test', i)));
    const census = new QueueCensus(q, options(() => now, 1000));
    const [one, two] = await Promise.all([census.current(), census.current()]);
    assert.equal(one, two);
    q.items.clear();
    now += 500;
    assert.equal((await census.current()).entries.scheduled, 3000, 'young: reused');
    now += 60_000;
    assert.equal((await census.current()).entries.scheduled, 0, 'old: counted again (the queue is small now)');
  });
});
