import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { OverrideTable } from '../../../src/cluster/index.js';
import { systemClock } from '../../../src/core/index.js';
import { createLogger } from '../../../src/log/index.js';
import { OverrideFile, Overrides, QueueAdminError } from '../../../src/scheduler/index.js';

const records: Record<string, unknown>[] = [];
const logger = createLogger({ destination: new Writable({ write: (c, _e, cb) => (records.push(JSON.parse(String(c))), cb()) }) as never });

describe('limit overrides', () => {
  it('lifts an override when its time is up, live: limits are weighed again and the file forgets it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tern-overrides-'));
    const table = new OverrideTable(systemClock);
    let reshaped = 0;
    const book = new Overrides({ table, store: new OverrideFile(dir), clock: systemClock, logger, reshape: () => reshaped++ });
    await book.set('Orange.FR', { maxConnections: 1, durationMs: 300, reason: 'asked' });
    assert.equal(reshaped, 1, 'the new limit applies to what waits');
    assert.equal(table.get('orange.fr')?.maxConnections, 1);
    assert.equal(new OverrideFile(dir).load().length, 1, 'on disk before set() answers');
    while (!records.some((r) => r.event === 'override_expired' && r.destination === 'orange.fr')) await new Promise((r) => setTimeout(r, 50));
    assert.equal(reshaped, 2, 'expiry weighs the waiting entries again');
    assert.deepEqual(book.list(), []);
    await book.settled();
    assert.deepEqual(new OverrideFile(dir).load(), []);
    book.close();
  });

  it('holds through a restart, and refuses what is not an override', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tern-overrides-'));
    const first = new Overrides({ table: new OverrideTable(systemClock), store: new OverrideFile(dir), clock: systemClock, logger, reshape: () => undefined });
    await first.set('mx:*.mail.protection.outlook.com', { maxMessageRate: { count: 1, perMs: 60_000 }, durationMs: 3_600_000, reason: 'throttled', rule: 'microsoft' });
    first.close();
    const table = new OverrideTable(systemClock);
    const second = new Overrides({ table, store: new OverrideFile(dir), clock: systemClock, logger, reshape: () => undefined });
    const [kept] = second.list();
    assert.equal(kept.destination, 'mx:*.mail.protection.outlook.com');
    assert.equal(kept.rule, 'microsoft');
    assert.deepEqual(kept.maxMessageRate, { count: 1, perMs: 60_000 });
    for (const [name, options] of [
      ['a b', { maxConnections: 1, durationMs: 1000 }],
      ['ok.test', { durationMs: 1000 }],
      ['ok.test', { maxConnections: 1 }],
      ['ok.test', { maxConnections: 0, durationMs: 1000 }],
    ] as const) {
      await assert.rejects(second.set(name, options), (err) => err instanceof QueueAdminError && err.reason === 'invalid');
    }
    assert.equal(await second.clear('nothing.test'), undefined);
    assert.equal((await second.clear('MX:*.mail.protection.outlook.com'))?.rule, 'microsoft');
    second.close();
  });
});
