import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { Writable } from 'node:stream';
import { setImmediate as turn } from 'node:timers/promises';
import type { Clock, DeliveryOutcome } from '../../../src/core/index.js';
import { loadConfig } from '../../../src/config/index.js';
import { createLogger } from '../../../src/log/index.js';
import { LocalCoordinator } from '../../../src/cluster/index.js';
import type { ConnectionLease, DestinationLimits } from '../../../src/cluster/index.js';
import { Scheduler } from '../../../src/scheduler/index.js';
import type { Deliverer, DeliveryTicket } from '../../../src/scheduler/index.js';
import { MemorySpool } from '../../../src/spool/index.js';
import type { QueueEntry } from '../../../src/spool/index.js';
import { writeConfig } from '../../helpers/tern-process.js';

/** A deliverer whose attempts the test settles by hand, with the tickets they carried. */
class HeldDeliverer extends EventEmitter implements Deliverer {
  calls: { entry: QueueEntry; ticket?: DeliveryTicket; settle: (o: DeliveryOutcome) => void }[] = [];
  ended: string[] = [];
  deliver(entry: QueueEntry, ticket?: DeliveryTicket): Promise<DeliveryOutcome> {
    return new Promise((resolve) => {
      this.calls.push({ entry, ticket, settle: resolve });
      this.emit('call');
    });
  }
  async endLease(lease: ConnectionLease): Promise<void> {
    this.ended.push(lease.id);
  }
  destroy(): void {}
}

class FakeClock implements Clock {
  t = Date.parse('2026-01-01T00:00:00Z');
  now(): number {
    return this.t;
  }
}

const silent = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) as never });
const settle = async () => {
  for (let i = 0; i < 8; i++) {
    await turn();
    mock.timers.tick(0);
  }
};
const spools: MemorySpool[] = [];

async function setup(limits: DestinationLimits) {
  const clock = new FakeClock();
  const spool = new MemorySpool();
  spools.push(spool);
  await spool.open();
  const config = loadConfig(writeConfig({ 'outbound.ini': 'idle_timeout=5s\n' }));
  const deliverer = new HeldDeliverer();
  const coordinator = new LocalCoordinator(clock);
  const scheduler = new Scheduler({
    config: config.outbound,
    spool,
    deliverer,
    logger: silent,
    clock,
    coordinator,
    destinations: { resolve: (domain) => (domain === 'd.test' ? { key: 'd.test', limits } : undefined) },
  });
  const queue = async (rcpt: string) => {
    const incoming = await spool.receive();
    incoming.body.write('Subject: t\r\n\r\nx\r\n');
    const entries = await incoming.commit([{ domain: rcpt.split('@')[1], sender: 's@x.test', recipients: [{ address: rcpt, state: 'pending' }], dsn: {}, smtpUtf8: false, bodyType: '7bit' }], clock.now());
    scheduler.add(entries);
    await settle();
    return entries[0];
  };
  const advance = async (ms: number) => {
    clock.t += ms;
    mock.timers.tick(ms);
    await settle();
  };
  const finish = async (n: number) => {
    const attempted = once(scheduler, 'attempt');
    const c = deliverer.calls[n];
    c.settle({ tls: false, recipients: c.entry.recipients.map((r) => ({ address: r.address, result: 'delivered', reply: { code: 250, text: 'ok' } })) });
    await attempted;
    await settle();
  };
  return { clock, scheduler, deliverer, coordinator, queue, advance, finish };
}

describe('Scheduler with limits.ini (fake clock, LocalCoordinator)', { timeout: 20000 }, () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(async () => {
    mock.timers.reset();
    for (const spool of spools.splice(0)) await spool.close();
  });

  it('parks entries over the rate without an attempt, and starts each when its token is due', async () => {
    const { scheduler, deliverer, queue, advance, finish } = await setup({ maxConnections: 5, rate: { count: 1, perMs: 60_000, burst: 1 } });
    await queue('a@d.test');
    const b = await queue('b@d.test');
    const c = await queue('c@d.test');
    assert.equal(deliverer.calls.length, 1);
    assert.equal(scheduler.parkedReason(b.id), 'rate_limited');
    assert.equal((await scheduler.load(b.id))!.attempts, 0, 'waiting costs no attempt');
    assert.equal(scheduler.parkedCounts().rate_limited, 2);
    await finish(0);
    await advance(59_999);
    assert.equal(deliverer.calls.length, 1, 'not before its token');
    await advance(1);
    assert.equal(deliverer.calls.length, 2);
    assert.equal(deliverer.calls[1].entry.id, b.id, 'in the order they came');
    assert.equal(scheduler.parkedReason(c.id), 'rate_limited');
    await queue('other@e.test');
    assert.equal(deliverer.calls.length, 3, 'a destination without limits is not held up');
    assert.equal(deliverer.calls[2].ticket, undefined);
  });

  it('parks over max_connections, hands the slot (and its session) to the next, and gives it back once idle', async () => {
    const { scheduler, deliverer, coordinator, queue, advance, finish } = await setup({ maxConnections: 1 });
    await queue('a@d.test');
    const b = await queue('b@d.test');
    assert.equal(deliverer.calls.length, 1);
    assert.equal(scheduler.parkedReason(b.id), 'connection_limit');
    await finish(0);
    assert.equal(deliverer.calls.length, 2);
    assert.equal(deliverer.calls[1].ticket!.lease.id, deliverer.calls[0].ticket!.lease.id, 'the same slot, so the same session');
    await finish(1);
    assert.equal(coordinator.held('d.test'), 1, 'kept while its session is idle');
    await advance(5000);
    assert.deepEqual(deliverer.ended, [deliverer.calls[0].ticket!.lease.id], 'the idle session is ended first');
    await settle();
    assert.equal(coordinator.held('d.test'), 0);
  });

  it('does not give a freed slot to an entry held meanwhile', async () => {
    const { scheduler, deliverer, queue, finish } = await setup({ maxConnections: 1 });
    await queue('a@d.test');
    const b = await queue('b@d.test');
    const c = await queue('c@d.test');
    await scheduler.hold(b.id);
    assert.equal(scheduler.parkedReason(b.id), undefined, 'a held entry does not wait for a slot');
    await finish(0);
    assert.equal(deliverer.calls.length, 2);
    assert.equal(deliverer.calls[1].entry.id, c.id);
  });
});
