import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCoordinator } from '../../../src/cluster/index.js';
import type { ConnectionLease, DestinationLimits } from '../../../src/cluster/index.js';
import { Shaper } from '../../../src/scheduler/shaper.js';
import type { ShapingTicket, Standing } from '../../../src/scheduler/shaper.js';

class FakeClock {
  t = 1_000_000;
  now(): number {
    return this.t;
  }
}

const settle = () => new Promise((r) => setImmediate(r));

function shaper(options: { idleMs?: number; standing?: (id: string) => Standing } = {}) {
  const clock = new FakeClock();
  const coordinator = new LocalCoordinator(clock);
  const started: { id: string; ticket: ShapingTicket }[] = [];
  const requeued: string[] = [];
  const ended: string[] = [];
  const s = new Shaper({
    coordinator,
    clock,
    standing: options.standing ?? (() => 'go'),
    start: (id, ticket) => started.push({ id, ticket }),
    requeue: (ids) => requeued.push(...ids),
    endLease: async (lease: ConnectionLease) => {
      ended.push(lease.id);
    },
    idleMs: () => options.idleMs ?? 5000,
    wake: () => undefined,
  });
  return { clock, coordinator, shaper: s, started, requeued, ended };
}

const dest = (limits: DestinationLimits, key = 'd.test') => ({ key, limits });

describe('Shaper', () => {
  it('does not miss a freed slot whose notice overtakes the "no slot" answer (nodes=N, over IPC)', async () => {
    const clock = new FakeClock();
    const local = new LocalCoordinator(clock);
    let overtaken = false;
    // The far end answers "no slot", but the notice that the last slot came free reaches
    // the worker first: the order node's IPC may deliver them in.
    const coordinator = Object.assign(Object.create(local) as LocalCoordinator, {
      async acquireSlot(key: string, limits: DestinationLimits, id: string) {
        if (overtaken) return local.acquireSlot(key, limits, id);
        overtaken = true;
        notify(key);
        return { granted: false as const, reason: 'connection_limit' as const };
      },
    });
    let notify: (key: string) => void = () => undefined;
    coordinator.onFreed = (listener) => ((notify = listener), () => undefined);
    const started: string[] = [];
    const s = new Shaper({
      coordinator,
      clock,
      standing: () => 'go',
      start: (id) => started.push(id),
      requeue: () => undefined,
      endLease: async () => undefined,
      idleMs: () => 5000,
      wake: () => undefined,
    });
    s.enter('a', dest({ maxConnections: 1 }));
    await settle();
    assert.deepEqual(started, ['a'], 'the pass went round once more and took the freed slot');
  });

  it('starts at most max_connections at once, in order, and hands a finished slot to the next', async () => {
    const { shaper: s, started, coordinator } = shaper();
    const d = dest({ maxConnections: 2 });
    for (const id of ['a', 'b', 'c', 'd']) s.enter(id, d);
    await settle();
    assert.deepEqual(started.map((x) => x.id), ['a', 'b']);
    assert.equal(s.reasonOf('c'), 'connection_limit');
    assert.equal(s.reasonOf('a'), undefined, 'a started: not parked');
    assert.deepEqual(s.parked(() => true), { rate_limited: 0, connection_limit: 2 });
    s.finished(started[0].ticket, 'used');
    await settle();
    assert.deepEqual(started.map((x) => x.id), ['a', 'b', 'c']);
    assert.equal(started[2].ticket.lease.id, started[0].ticket.lease.id, 'c reuses the slot (and the session) a had');
    assert.equal(coordinator.held('d.test'), 2);
  });

  it('parks on the rate, wakes when the token is due, and never asks for a wake-up in the past', async () => {
    const { shaper: s, started, clock } = shaper();
    const d = dest({ maxConnections: 5, rate: { count: 10, perMs: 1000, burst: 2 } });
    for (const id of ['a', 'b', 'c', 'd']) s.enter(id, d);
    await settle();
    assert.deepEqual(started.map((x) => x.id), ['a', 'b'], 'the burst');
    assert.equal(s.reasonOf('c'), 'rate_limited');
    const wake = s.wakeAt();
    assert.ok(wake !== undefined && wake > clock.t, 'a wake-up in the future');
    s.lapse();
    await settle();
    assert.equal(started.length, 2, 'nothing before the token is due');
    clock.t = wake!;
    s.lapse();
    await settle();
    assert.deepEqual(started.map((x) => x.id), ['a', 'b', 'c']);
    assert.ok(s.wakeAt()! > clock.t);
  });

  it('drops entries no longer waiting and hands back those the gate must park, keeping the order', async () => {
    const gone = new Set(['b']);
    const blocked = new Set(['c']);
    const { shaper: s, started, requeued } = shaper({ standing: (id) => (gone.has(id) ? 'gone' : blocked.has(id) ? 'blocked' : 'go') });
    const d = dest({ maxConnections: 1 });
    for (const id of ['a', 'b', 'c', 'd']) s.enter(id, d);
    await settle();
    s.finished(started[0].ticket, 'used');
    await settle();
    assert.deepEqual(started.map((x) => x.id), ['a', 'd'], 'the freed slot goes to d, still waiting');
    assert.deepEqual(requeued, ['c']);
  });

  it('gives the token back and frees the slot when the destination did not answer', async () => {
    const { shaper: s, started, coordinator, ended } = shaper();
    const d = dest({ maxConnections: 1, rate: { count: 1, perMs: 60_000, burst: 1 } });
    s.enter('a', d);
    await settle();
    s.finished(started[0].ticket, 'unreachable');
    await settle();
    assert.deepEqual(ended, [started[0].ticket.lease.id], 'the slot is given back after its session is ended');
    assert.equal(coordinator.held('d.test'), 0);
    s.enter('b', d);
    await settle();
    assert.deepEqual(started.map((x) => x.id), ['a', 'b'], 'the returned token lets b go at once');
  });

  it('gives an idle slot back after idle_timeout once nothing waits', async () => {
    const { shaper: s, started, coordinator, clock } = shaper({ idleMs: 5000 });
    s.enter('a', dest({ maxConnections: 2 }));
    await settle();
    s.finished(started[0].ticket, 'used');
    await settle();
    assert.equal(coordinator.held('d.test'), 1, 'kept with its idle session');
    assert.equal(s.wakeAt(), clock.t + 5000);
    clock.t += 5000;
    s.lapse();
    await settle();
    assert.equal(coordinator.held('d.test'), 0);
    assert.equal(s.wakeAt(), undefined);
  });

  it('hands every parked entry back, in order, when limits.ini changes', async () => {
    const { shaper: s, started } = shaper();
    const d = dest({ maxConnections: 1 });
    for (const id of ['a', 'b', 'c']) s.enter(id, d);
    await settle();
    assert.deepEqual(started.map((x) => x.id), ['a']);
    assert.deepEqual(s.handBack(), ['b', 'c']);
    assert.equal(s.reasonOf('b'), undefined);
  });

  it('keeps the slot of entries waiting for a token past idle_timeout without a wake-up in the past (no timer spin)', async () => {
    const { shaper: s, started, clock } = shaper({ idleMs: 5000 });
    const d = dest({ maxConnections: 1, rate: { count: 1, perMs: 60_000, burst: 1 } });
    s.enter('a', d);
    s.enter('b', d);
    await settle();
    s.finished(started[0].ticket, 'used');
    await settle();
    clock.t += 10_000;
    s.lapse();
    await settle();
    const wake = s.wakeAt();
    assert.ok(wake !== undefined && wake > clock.t, `wakes at ${wake}, now ${clock.t}`);
    assert.equal(s.reasonOf('b'), 'rate_limited');
  });
});
