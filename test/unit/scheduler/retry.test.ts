import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RetrySchedule, TimerHeap, applyOutcome, expireEntry } from '../../../src/scheduler/index.js';
import type { QueueEntry } from '../../../src/spool/index.js';

function entry(recipients: string[]): QueueEntry {
  return {
    id: 'M.1', messageId: 'M', domain: 'd.test', sender: 's@x.test',
    recipients: recipients.map((address) => ({ address, state: 'pending' as const })),
    dsn: {}, smtpUtf8: false, bodyType: '7bit', queuedAt: 0, size: 10, entriesOfMessage: 1, attempts: 1, tempFailures: 0, nextAttemptAt: 0,
  };
}

describe('RetrySchedule', () => {
  it('uses temp_fail_intervals and gives up when the list runs out', () => {
    const s = new RetrySchedule([60, 300], 13);
    assert.equal(s.delayAfter(1), 60);
    assert.equal(s.delayAfter(2), 300);
    assert.equal(s.delayAfter(3), undefined);
    assert.equal(new RetrySchedule([], 13).delayAfter(1), undefined);
  });
  it("falls back to Haraka's 2^(n+5) backoff bounded by maxTempFailures", () => {
    const s = new RetrySchedule(undefined, 3);
    assert.deepEqual([1, 2, 3, 4].map((n) => s.delayAfter(n)), [64, 128, 256, undefined]);
  });
});

describe('TimerHeap', () => {
  it('pops in due order', () => {
    const h = new TimerHeap();
    for (const [due, id] of [[5, 'e'], [1, 'a'], [3, 'c'], [2, 'b'], [4, 'd']] as const) h.push(due, id);
    assert.deepEqual([1, 2, 3, 4, 5].map(() => h.pop()!.id), ['a', 'b', 'c', 'd', 'e']);
    assert.equal(h.pop(), undefined);
  });
});

describe('applyOutcome', () => {
  const ctx = { now: 1000, schedule: new RetrySchedule([10], 13), lifetime: 3600 };
  it('makes one disposition per recipient and keeps final states', () => {
    const e = entry(['ok@d.test', 'no@d.test', 'later@d.test']);
    const r = applyOutcome(e, {
      tls: true,
      recipients: [
        { address: 'ok@d.test', result: 'delivered', reply: { code: 250, text: 'ok' } },
        { address: 'no@d.test', result: 'failed', reply: { code: 550, enhanced: '5.1.1', text: 'no' } },
        { address: 'later@d.test', result: 'deferred', reply: { code: 451, enhanced: '4.3.0', text: 'later' } },
      ],
    }, ctx);
    assert.deepEqual(r.events.map((x) => x.kind), ['Delivery', 'Bounce', 'TransientFailure']);
    assert.equal(r.finished, false);
    assert.equal(r.nextAttemptAt, 11000);
    assert.equal(e.tempFailures, 1);
    assert.deepEqual(e.recipients.map((x) => x.state), ['delivered', 'failed', 'deferred']);
  });
  it('bounces deferred recipients when the schedule is used up', () => {
    const e = entry(['later@d.test']);
    e.tempFailures = 1;
    const r = applyOutcome(e, { tls: false, recipients: [{ address: 'later@d.test', result: 'deferred', reply: { code: 451, text: 'x' } }] }, ctx);
    assert.deepEqual(r.events.map((x) => x.kind), ['Bounce']);
    assert.equal(r.finished, true);
  });
  it('expires when the next attempt would pass the lifetime', () => {
    const e = entry(['later@d.test']);
    const r = applyOutcome(e, { tls: false, recipients: [{ address: 'later@d.test', result: 'deferred', reply: { code: 451, text: 'x' } }] }, { ...ctx, lifetime: 5 });
    assert.equal(r.events[0].kind, 'Expiration');
    assert.equal(r.events[0].reply.enhanced, '5.4.7');
    assert.equal(r.finished, true);
  });
  it('expireEntry fails only the unfinished recipients', () => {
    const e = entry(['a@d.test', 'b@d.test']);
    e.recipients[0].state = 'delivered';
    const recs = expireEntry(e, 99);
    assert.deepEqual(recs.map((x) => x.recipient), ['b@d.test']);
  });
});
