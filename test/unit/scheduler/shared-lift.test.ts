import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseNews } from '../../../src/cluster/index.js';
import type { DestinationHealth } from '../../../src/cluster/index.js';
import { MAX_LIFT, liftShared, logLift } from '../../../src/scheduler/shared-lift.js';
import { recordingLogger } from '../../helpers/recording-logger.js';

/** A shared state that answers `up` after a turn of the event loop, true unless the destination is in `refuse`; it notes how many calls run at once. */
function sharedState(refuse: ReadonlySet<string> = new Set()) {
  const ups: string[] = [];
  let running = 0;
  let most = 0;
  const health: Pick<DestinationHealth, 'up'> = {
    up: async (destination, lifted) => {
      assert.equal(lifted, true, 'an operator lift says so');
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setImmediate(r));
      running--;
      ups.push(destination);
      return !refuse.has(destination);
    },
  };
  return { health: health as DestinationHealth, ups, most: () => most };
}

describe("the operator's lift through the shared health", () => {
  it('clears each destination once, a few at a time, and counts what Redis did not take', async () => {
    const state = sharedState(new Set(['b.test']));
    const result = await liftShared(state.health, ['a.test', 'b.test', 'c.test']);
    assert.deepEqual([...state.ups].sort(), ['a.test', 'b.test', 'c.test']);
    assert.deepEqual(result, { destinations: 3, shared: 2, localOnly: 1 });
  });

  it('a flush of more destinations than the bound: the first MAX_LIFT are cleared, never more than 16 at once; the rest stay local', async () => {
    const state = sharedState();
    const domains = Array.from({ length: MAX_LIFT + 5 }, (_, i) => `d${i}.test`);
    const result = await liftShared(state.health, domains);
    assert.equal(state.ups.length, MAX_LIFT);
    assert.equal(new Set(state.ups).size, MAX_LIFT);
    assert.ok(state.most() <= 16, `${state.most()} at once`);
    assert.deepEqual(result, { destinations: MAX_LIFT + 5, shared: MAX_LIFT, localOnly: 5 });
  });

  it('logs whether the lift reached every node', () => {
    const { logger, records } = recordingLogger();
    logLift(logger, 'one.test', { destinations: 1, shared: 1, localOnly: 0 });
    logLift(logger, undefined, { destinations: 3, shared: 0, localOnly: 3 });
    logLift(logger, undefined, { destinations: 3, shared: 1, localOnly: 2 });
    assert.deepEqual(
      records.map((r) => [r.event, r.level, r.domain, r.scope, r.destinations, r.shared, r.local_only]),
      [
        ['destination_backoff_lifted', 'info', 'one.test', 'cluster', 1, 1, 0],
        ['destination_backoff_lifted', 'warn', undefined, 'local', 3, 0, 3],
        ['destination_backoff_lifted', 'warn', undefined, 'partial', 3, 1, 2],
      ],
    );
  });

  it('the "up" news of a lift carries `lifted`; anything but true is no lift', () => {
    const up = (extra: object) => JSON.stringify({ v: 1, kind: 'up', destination: 'x.test', node: 'n1', ...extra });
    assert.deepEqual(parseNews(up({ lifted: true })), { kind: 'up', destination: 'x.test', node: 'n1', lifted: true });
    assert.deepEqual(parseNews(up({ lifted: 'yes' })), { kind: 'up', destination: 'x.test', node: 'n1' });
    assert.deepEqual(parseNews(up({})), { kind: 'up', destination: 'x.test', node: 'n1' });
  });
});
