import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from '../../helpers/temp-dir.js';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { DeliveryOutcome } from '../../../src/core/index.js';
import { systemClock } from '../../../src/core/index.js';
import { loadConfig } from '../../../src/config/index.js';
import { createLogger } from '../../../src/log/index.js';
import type { DispositionRecord } from '../../../src/log/index.js';
import { Scheduler } from '../../../src/scheduler/index.js';
import type { Deliverer } from '../../../src/scheduler/index.js';
import { DiskSpool } from '../../../src/spool/index.js';
import type { QueueEntry } from '../../../src/spool/index.js';
import { writeConfig } from '../../helpers/tern-process.js';

/** A deliverer whose attempts the test settles by hand; the scheduler and spool are real. */
class HeldDeliverer implements Deliverer {
  calls: { entry: QueueEntry; settle: (o: DeliveryOutcome) => void }[] = [];
  destroyed = false;
  deliver(entry: QueueEntry): Promise<DeliveryOutcome> {
    return new Promise((resolve) => this.calls.push({ entry, settle: resolve }));
  }
  destroy(): void {
    this.destroyed = true;
    for (const c of this.calls) c.settle({ tls: false, recipients: c.entry.recipients.map((r) => ({ address: r.address, result: 'deferred', reply: { code: 451, text: 'aborted' } })) });
  }
}

const silent = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) as never });
const tick = () => new Promise((r) => setTimeout(r, 20));

async function setup(outbound: string) {
  const spool = new DiskSpool(join(tempDir('tern-sched-'), 'queue'));
  await spool.open();
  const config = loadConfig(writeConfig({ 'outbound.ini': outbound }));
  const deliverer = new HeldDeliverer();
  const scheduler = new Scheduler({ config: config.outbound, spool, deliverer, logger: silent, clock: systemClock });
  const records: DispositionRecord[] = [];
  scheduler.on('disposition', (r) => records.push(r));
  const queue = async (rcpts: string[]) => {
    const incoming = await spool.receive();
    incoming.body.write('Subject: t\r\n\r\nx\r\n');
    const entries = await incoming.commit([{ domain: 'd.test', sender: 's@x.test', recipients: rcpts.map((address) => ({ address, state: 'pending' })), dsn: {}, smtpUtf8: false, bodyType: '7bit' }], Date.now());
    scheduler.add(entries);
    return entries;
  };
  return { spool, scheduler, deliverer, records, queue };
}

describe('Scheduler', () => {
  it('never starts a second attempt of an entry in flight, however often it is flushed', async () => {
    const { scheduler, deliverer, queue } = await setup('temp_fail_intervals=1h');
    await queue(['a@d.test']);
    await tick();
    assert.equal(deliverer.calls.length, 1);
    scheduler.flush();
    scheduler.flush();
    await tick();
    assert.equal(deliverer.calls.length, 1, 'still one attempt');
    deliverer.calls[0].settle({ tls: false, recipients: [{ address: 'a@d.test', result: 'deferred', reply: { code: 451, text: 'later' } }] });
    await tick();
    assert.equal(deliverer.calls.length, 1, 'deferred for an hour');
    assert.equal(scheduler.flush(), 1);
    await tick();
    assert.equal(deliverer.calls.length, 2, 'the flush makes it due now');
    await scheduler.stop(10);
  });

  it('keeps no more than concurrency_max attempts in flight', async () => {
    const { scheduler, deliverer, queue } = await setup('concurrency_max=2');
    for (let i = 0; i < 5; i++) await queue([`r${i}@d.test`]);
    await tick();
    assert.equal(deliverer.calls.length, 2);
    deliverer.calls[0].settle({ tls: false, recipients: [{ address: 'r0@d.test', result: 'delivered', reply: { code: 250, text: 'ok' } }] });
    await tick();
    assert.equal(deliverer.calls.length, 3);
    assert.equal(scheduler.inFlightCount, 2);
    await scheduler.stop(10);
  });

  it('on shutdown past the bound, aborts attempts without counting them as failures', async () => {
    const { scheduler, deliverer, records, queue, spool } = await setup('');
    const [entry] = await queue(['a@d.test']);
    await tick();
    const { aborted } = await scheduler.stop(50);
    assert.equal(aborted, 1);
    assert.ok(deliverer.destroyed);
    assert.equal(records.length, 0, 'no TransientFailure for an attempt cut short');
    const restarted = new DiskSpool(spool.root);
    await restarted.open();
    const ids: string[] = [];
    await restarted.recover({ onBatch: (heads) => ids.push(...heads.map((h) => h.id)) });
    assert.deepEqual(ids, [entry.id]);
    const onDisk = await restarted.load(entry.id);
    assert.equal(onDisk.id, entry.id);
    assert.equal(onDisk.tempFailures, 0);
    assert.equal(onDisk.recipients[0].state, 'pending');
  });
});
