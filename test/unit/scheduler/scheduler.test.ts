import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setImmediate as turn } from 'node:timers/promises';
import { tempDir } from '../../helpers/temp-dir.js';
import type { AdminAction, Clock, DeliveryOutcome, RecipientDisposition, RecipientOutcome } from '../../../src/core/index.js';
import { loadConfig } from '../../../src/config/index.js';
import { createLogger } from '../../../src/log/index.js';
import { QueueAdminError, Scheduler, SuspensionFile } from '../../../src/scheduler/index.js';
import type { Deliverer } from '../../../src/scheduler/index.js';
import { MemorySpool } from '../../../src/spool/index.js';
import type { QueueEntry } from '../../../src/spool/index.js';
import { writeConfig } from '../../helpers/tern-process.js';

/** A deliverer whose attempts the test settles by hand; the scheduler and the spool are real. */
class HeldDeliverer extends EventEmitter implements Deliverer {
  calls: { entry: QueueEntry; settle: (o: DeliveryOutcome) => void }[] = [];
  destroyed = false;
  deliver(entry: QueueEntry): Promise<DeliveryOutcome> {
    return new Promise((resolve) => {
      this.calls.push({ entry, settle: resolve });
      this.emit('call');
    });
  }
  destroy(): void {
    this.destroyed = true;
    for (const c of this.calls) c.settle(outcome(c.entry, 'deferred'));
  }
  async called(n: number): Promise<void> {
    while (this.calls.length < n) await once(this, 'call');
  }
}

function outcome(entry: QueueEntry, result: RecipientOutcome['result'], extra: Partial<DeliveryOutcome> = {}): DeliveryOutcome {
  const reply = { delivered: { code: 250, text: 'ok' }, deferred: { code: 451, text: 'later' }, failed: { code: 550, text: 'no' } }[result];
  // As a real session's: it names the host that answered.
  return { tls: false, recipients: entry.recipients.map((r) => ({ address: r.address, result, reply })), peer: { name: `mx.${entry.domain}`, address: '192.0.2.1', port: 25 }, ...extra };
}

class FakeClock implements Clock {
  t = Date.parse('2026-01-01T00:00:00Z');
  now(): number {
    return this.t;
  }
}

const silent = process.env.DEBUG_SCHED ? createLogger({}) : createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) as never });
/** Lets what the scheduler started run to where it waits, timers due now included (no time passes). */
const settle = async () => {
  for (let i = 0; i < 5; i++) {
    await turn();
    mock.timers.tick(0);
  }
};

/** stop() with its drain bound run out on the mocked timers (the clock stays). */
async function stopNow(scheduler: Scheduler, boundMs = 0): Promise<{ aborted: number }> {
  let done = false;
  const stopping = scheduler.stop(boundMs).finally(() => (done = true));
  while (!done) {
    await turn();
    mock.timers.tick(boundMs);
  }
  return stopping;
}

// The spool is the in-memory one: these tests are about the scheduler, and run in milliseconds.
const spools: MemorySpool[] = [];

async function setup(outbound: string, queueDir = join(tempDir('tern-sched-'), 'queue')) {
  const clock = new FakeClock();
  const spool = new MemorySpool();
  mkdirSync(queueDir, { recursive: true }); // where the suspensions file lives
  spools.push(spool);
  await spool.open();
  const config = loadConfig(writeConfig({ 'outbound.ini': outbound }));
  const deliverer = new HeldDeliverer();
  const scheduler = new Scheduler({ config: config.outbound, spool, deliverer, logger: silent, clock, suspensions: new SuspensionFile(queueDir) });
  const records: (RecipientDisposition | AdminAction)[] = [];
  scheduler.on('disposition', (r) => records.push(r));
  const queue = async (rcpts: string[], domain = 'd.test') => {
    const incoming = await spool.receive();
    incoming.body.write('Subject: t\r\n\r\nx\r\n');
    const entries = await incoming.commit([{ domain, sender: 's@x.test', recipients: rcpts.map((address) => ({ address, state: 'pending' })), dsn: {}, smtpUtf8: false, bodyType: '7bit' }], clock.now());
    scheduler.add(entries);
    await settle();
    return entries[0];
  };
  /** Time passes: the clock and the timers move together. */
  const advance = async (ms: number) => {
    clock.t += ms;
    mock.timers.tick(ms);
    await settle();
  };
  /** Settles the n-th attempt and waits until the scheduler has written it down. */
  const finish = async (n: number, result: RecipientOutcome['result'], extra: Partial<DeliveryOutcome> = {}) => {
    const attempted = once(scheduler, 'attempt');
    deliverer.calls[n].settle(outcome(deliverer.calls[n].entry, result, extra));
    await attempted;
    await settle();
  };
  return { clock, spool, scheduler, deliverer, records, queue, advance, finish, queueDir };
}

describe('Scheduler (fake clock, real spool)', { timeout: 20000 }, () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(async () => {
    mock.timers.reset();
    for (const spool of spools.splice(0)) await spool.close();
  });

  it('never starts a second attempt of an entry in flight, however often it is flushed', async () => {
    const { scheduler, deliverer, queue, finish } = await setup('temp_fail_intervals=1h');
    await queue(['a@d.test']);
    assert.equal(deliverer.calls.length, 1);
    scheduler.flush();
    scheduler.flush();
    await settle();
    assert.equal(deliverer.calls.length, 1, 'still one attempt');
    await finish(0, 'deferred');
    assert.equal(deliverer.calls.length, 1, 'deferred for an hour');
    assert.equal(scheduler.flush(), 1);
    await deliverer.called(2);
  });

  it('keeps no more than concurrency_max attempts in flight', async () => {
    const { scheduler, deliverer, queue, finish } = await setup('concurrency_max=2');
    for (let i = 0; i < 5; i++) await queue([`r${i}@d.test`]);
    assert.equal(deliverer.calls.length, 2);
    await finish(0, 'delivered');
    assert.equal(deliverer.calls.length, 3);
    assert.equal(scheduler.inFlightCount, 2);
  });

  it('tries a deferred entry again when the retry schedule says, not before, and keeps that time on disk', async () => {
    const { scheduler, spool, deliverer, queue, advance, finish, clock } = await setup('temp_fail_intervals=1h');
    const entry = await queue(['a@d.test']);
    const t0 = clock.now();
    await finish(0, 'deferred');
    assert.equal((await spool.load(entry.id)).nextAttemptAt, t0 + 3600_000);
    assert.equal((await scheduler.load(entry.id))!.nextAttemptAt, t0 + 3600_000);
    await advance(3599_999);
    assert.equal(deliverer.calls.length, 1);
    await advance(1);
    assert.equal(deliverer.calls.length, 2);
  });

  it('backs off a dead destination: later entries wait, then one probe goes', async () => {
    const { scheduler, deliverer, queue, advance, finish, clock } = await setup('temp_fail_intervals=1h\ndestination_backoff_min=10m');
    await queue(['a@d.test']);
    await finish(0, 'deferred', { unreachable: true });
    const b = await queue(['b@d.test']);
    assert.equal(scheduler.nextAttempt((await scheduler.load(b.id))!), clock.now() + 600_000, 'the operator sees when it will be tried');
    await queue(['c@d.test']);
    await queue(['x@other.test'], 'other.test');
    assert.deepEqual(deliverer.calls.slice(1).map((c) => c.entry.domain), ['other.test'], 'only the other destination is tried');
    await advance(599_999);
    assert.equal(deliverer.calls.length, 2);
    await advance(1);
    assert.deepEqual(deliverer.calls.slice(2).map((c) => c.entry.recipients[0].address), ['b@d.test'], 'one probe');
    await finish(2, 'delivered');
    assert.deepEqual(deliverer.calls.slice(3).map((c) => c.entry.recipients[0].address), ['c@d.test'], 'the probe got through: the rest go');
  });

  it('a probe that reaches no server (its DNS lookup failed) does not end the backoff: the next entry probes', async () => {
    const { deliverer, queue, advance, finish } = await setup('temp_fail_intervals=1h\ndestination_backoff_min=10m');
    await queue(['a@d.test']);
    await finish(0, 'deferred', { unreachable: true });
    await queue(['b@d.test']);
    await queue(['c@d.test']);
    await queue(['d@d.test']);
    await advance(600_000);
    assert.deepEqual(deliverer.calls.slice(1).map((c) => c.entry.recipients[0].address), ['b@d.test'], 'one probe');
    // No session was tried: no peer, not unreachable (as the agent answers a failed MX lookup).
    await finish(1, 'deferred', { peer: undefined });
    assert.equal(deliverer.calls.length, 3, 'one more probe, not everyone');
    await finish(2, 'delivered');
    assert.deepEqual(deliverer.calls.map((c) => c.entry.recipients[0].address).sort(), ['a@d.test', 'b@d.test', 'c@d.test', 'd@d.test'], 'a session: the rest go');
  });

  it('flush (one domain, or all) ends a destination’s backoff at once (issue 14.1)', async () => {
    const { scheduler, deliverer, queue, finish } = await setup('temp_fail_intervals=1h*5\ndestination_backoff_min=10m');
    await queue(['a@d.test']);
    await finish(0, 'deferred', { unreachable: true });
    await queue(['b@d.test']);
    assert.equal(deliverer.calls.length, 1);
    assert.equal(scheduler.flush('other.test'), 0);
    assert.equal(scheduler.flush('D.TEST'), 2, 'the deferred entry and the one that waited for the backoff');
    await deliverer.called(3);
    await finish(1, 'deferred', { unreachable: true });
    await finish(2, 'deferred', { unreachable: true });
    await queue(['c@d.test']);
    assert.equal(deliverer.calls.length, 3);
    assert.equal(scheduler.flush(), 3);
    await deliverer.called(6);
  });

  it('holds and releases an entry: held entries are not flushed, a release makes it due now', async () => {
    const { scheduler, deliverer, queue, finish } = await setup('temp_fail_intervals=1h');
    const entry = await queue(['a@d.test']);
    await finish(0, 'deferred');
    await scheduler.hold(entry.id);
    assert.equal(scheduler.flush(), 0);
    await settle();
    assert.equal(deliverer.calls.length, 1);
    await scheduler.release(entry.id);
    await deliverer.called(2);
    await assert.rejects(scheduler.hold(entry.id), (err: unknown) => err instanceof QueueAdminError && err.reason === 'in_flight');
    await assert.rejects(scheduler.hold('nope.1'), (err: unknown) => err instanceof QueueAdminError && err.reason === 'not_found');
  });

  it('lifts a suspension with a duration by itself, and writes the change to the queue directory', async () => {
    const { scheduler, deliverer, queue, advance, queueDir, clock } = await setup('');
    const s = await scheduler.suspend('D.test', { reason: 'migration', durationMs: 60_000 });
    assert.deepEqual(s, { domain: 'd.test', reason: 'migration', since: clock.now(), until: clock.now() + 60_000 });
    assert.deepEqual(JSON.parse(readFileSync(join(queueDir, 'suspensions.json'), 'utf8')).suspensions, [s]);
    await queue(['a@d.test']);
    await advance(59_999);
    assert.equal(deliverer.calls.length, 0);
    await advance(1);
    assert.equal(deliverer.calls.length, 1);
    assert.deepEqual(scheduler.suspensions(), []);
    await stopNow(scheduler);
    assert.deepEqual(JSON.parse(readFileSync(join(queueDir, 'suspensions.json'), 'utf8')).suspensions, []);
  });

  it('keeps a suspension across a restart until resumed; resume also ends the backoff', async () => {
    const first = await setup('');
    await first.scheduler.suspend('d.test', { reason: 'asked by the provider' });
    await stopNow(first.scheduler);
    const { scheduler, deliverer, queue } = await setup('', first.queueDir);
    assert.deepEqual(scheduler.suspensions().map((s) => [s.domain, s.reason, s.until]), [['d.test', 'asked by the provider', undefined]]);
    await queue(['a@d.test']);
    await queue(['b@d.test']);
    assert.equal(deliverer.calls.length, 0);
    assert.equal(await scheduler.resume('d.test'), 2);
    await deliverer.called(2);
  });

  it('refuses names that are not domains', async () => {
    const { scheduler } = await setup('');
    for (const name of ['foo bar', '../x', '', 'a'.repeat(254), `${'a'.repeat(64)}.test`, '-x.test']) {
      await assert.rejects(scheduler.suspend(name), (err: unknown) => err instanceof QueueAdminError && err.reason === 'invalid', JSON.stringify(name));
    }
    await assert.rejects(scheduler.suspend('d.test', { durationMs: 0 }), (err: unknown) => err instanceof QueueAdminError && err.reason === 'invalid');
    assert.deepEqual(scheduler.suspensions(), []);
    await scheduler.suspend('[192.0.2.1]');
    await scheduler.suspend('bücher.example');
    assert.deepEqual(scheduler.suspensions().map((s) => s.domain), ['[192.0.2.1]', 'bücher.example']);
  });

  it('on shutdown past the bound, aborts attempts without counting them as failures', async () => {
    const { scheduler, deliverer, records, queue, spool } = await setup('');
    const entry = await queue(['a@d.test']);
    const { aborted } = await stopNow(scheduler, 50);
    assert.equal(aborted, 1);
    assert.ok(deliverer.destroyed);
    assert.equal(records.length, 0, 'no TransientFailure for an attempt cut short');
    const restarted = spool.afterRestart();
    spools.push(restarted);
    await restarted.open();
    const ids: string[] = [];
    await restarted.recover({ onBatch: (heads) => ids.push(...heads.map((h) => h.id)) });
    assert.deepEqual(ids, [entry.id]);
    const onDisk = await restarted.load(entry.id);
    assert.equal(onDisk.tempFailures, 0);
    assert.equal(onDisk.recipients[0].state, 'pending');
  });
});
