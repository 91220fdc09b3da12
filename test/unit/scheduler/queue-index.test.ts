import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { QueueIndex } from '../../../src/scheduler/queue-index.js';
import type { EntryHead, QueueEntry } from '../../../src/spool/index.js';

function entry(id: string, domain: string, nextAttemptAt: number, extra: Partial<QueueEntry> = {}): QueueEntry {
  return {
    id, messageId: id.split('.')[0], domain, sender: 's@x.test', recipients: [{ address: `r@${domain}`, state: 'pending' }],
    dsn: {}, smtpUtf8: false, bodyType: '7bit', queuedAt: 0, size: 10, entriesOfMessage: 1, attempts: 0, tempFailures: 0, nextAttemptAt, ...extra,
  };
}

const head = (e: QueueEntry): EntryHead => ({ id: e.id, messageId: e.messageId, domain: e.domain, queuedAt: e.queuedAt, nextAttemptAt: e.nextAttemptAt, attempts: e.attempts, tempFailures: e.tempFailures, held: e.held });

/** Pops the heap until `now`, as the scheduler does, skipping stale positions. */
function due(q: QueueIndex, now: number): string[] {
  const out: string[] = [];
  for (let d = q.heap.peekDue(); d !== undefined && d <= now; d = q.heap.peekDue()) {
    const { id } = q.heap.pop()!;
    const item = q.get(id);
    if (item && item.nextAttemptAt === d) out.push(id);
  }
  return out;
}

describe('QueueIndex', () => {
  it('orders entries by due time and shares one domain string among its items', () => {
    const q = new QueueIndex();
    q.addNew(entry('b.1', 'd.test', 300));
    q.addNew(entry('a.1', 'd.test', 100));
    q.addRecovered(head(entry('c.1', 'd.test', 200)));
    assert.equal(q.size, 3);
    assert.deepEqual(due(q, 250), ['a.1', 'c.1']);
    assert.deepEqual(due(q, 1000), ['b.1']);
    assert.equal(q.get('a.1')!.domain, q.get('c.1')!.domain);
    assert.deepEqual([...q.values()].map((i) => i.id), ['b.1', 'a.1', 'c.1'], 'values() in the order they were added');
  });

  it('flushes waiting entries (of one domain) to now, leaving held ones, skipped ones and those already due', () => {
    const q = new QueueIndex();
    q.addNew(entry('a.1', 'x.test', 5000));
    q.addNew(entry('b.1', 'x.test', 5000, { held: true }));
    q.addNew(entry('c.1', 'y.test', 5000));
    q.addNew(entry('d.1', 'x.test', 50));
    q.addNew(entry('e.1', 'x.test', 5000));
    assert.equal(q.flush(100, 'x.test', (item) => item.id === 'e.1'), 1);
    assert.equal(q.get('a.1')!.nextAttemptAt, 100);
    assert.equal(q.get('b.1')!.nextAttemptAt, 5000);
    assert.equal(q.get('c.1')!.nextAttemptAt, 5000);
    assert.equal(q.get('d.1')!.nextAttemptAt, 50);
    assert.equal(q.flush(100, undefined, () => false), 2, 'y.test and e.1');
    assert.deepEqual(due(q, 100).sort(), ['a.1', 'c.1', 'd.1', 'e.1']);
  });

  it('applies a flush made during recovery to the entries read back after it', () => {
    const q = new QueueIndex();
    q.recoveryStarted();
    q.flush(100, 'x.test', () => false);
    q.addRecovered(head(entry('a.1', 'x.test', 5000)));
    q.addRecovered(head(entry('b.1', 'y.test', 5000)));
    q.addRecovered(head(entry('c.1', 'x.test', 5000, { held: true })));
    q.recoveryFinished();
    q.flush(200, undefined, () => false);
    q.addRecovered(head(entry('d.1', 'x.test', 5000)));
    assert.equal(q.get('a.1')!.nextAttemptAt, 100);
    assert.equal(q.get('b.1')!.nextAttemptAt, 200, 'flushed by the second flush, as it was queued by then');
    assert.equal(q.get('c.1')!.nextAttemptAt, 5000);
    assert.equal(q.get('d.1')!.nextAttemptAt, 5000, 'read back after recovery ended: not flushed');
  });

  it('keeps an attached entry’s due time in step with its item, and the item’s counters after detach', () => {
    const q = new QueueIndex();
    q.addRecovered(head(entry('a.1', 'x.test', 5000)));
    const item = q.get('a.1')!;
    q.flush(100, undefined, () => false);
    const loaded = q.attach(item, entry('a.1', 'x.test', 5000));
    assert.equal(loaded.nextAttemptAt, 100, 'the loaded entry takes the flushed time');
    loaded.attempts = 1;
    loaded.tempFailures = 1;
    q.setDue(item, 9000);
    assert.equal(loaded.nextAttemptAt, 9000);
    q.detach(item);
    assert.equal(item.entry, undefined, 'only the head stays');
    assert.deepEqual([item.nextAttemptAt, item.attempts, item.tempFailures], [9000, 1, 1]);
    const view = q.withTiming(item, entry('a.1', 'x.test', 1));
    assert.equal(view.nextAttemptAt, 9000);
    assert.equal(item.entry, undefined, 'a view does not attach');
  });

  it('skips positions made stale by a new due time or a deletion', () => {
    const q = new QueueIndex();
    q.addNew(entry('a.1', 'x.test', 100));
    q.addNew(entry('b.1', 'x.test', 100));
    q.setDue(q.get('a.1')!, 300);
    q.schedule(q.get('a.1')!);
    q.delete('b.1');
    assert.deepEqual(due(q, 200), []);
    assert.deepEqual(due(q, 300), ['a.1']);
  });
});
