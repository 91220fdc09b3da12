import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { text } from 'node:stream/consumers';
import type { EntryDraft, Spool } from '../../src/spool/index.js';

const draft = (domain: string, addresses: string[]): EntryDraft => ({
  domain,
  sender: 'sender@client.test',
  recipients: addresses.map((address) => ({ address, state: 'pending' })),
  dsn: { ret: 'HDRS' },
  smtpUtf8: false,
  bodyType: '8bitmime',
});

async function accept(spool: Spool, body: string, drafts: EntryDraft[]) {
  const incoming = await spool.receive();
  incoming.body.write(body);
  return incoming.commit(drafts, 1_700_000_000_000);
}

/**
 * The contract every Spool implementation keeps (BullMQ's way: one suite, every store).
 * `make` returns a new spool over the same storage each time it is called with the same
 * key, so that reopening after a "restart" can be tested.
 */
export function spoolContract(name: string, make: (key: string) => Spool, fresh: () => string): void {
  describe(`Spool contract: ${name}`, () => {
    it('commits a message as entries that a reopened spool finds', async () => {
      const key = fresh();
      const spool = make(key);
      await spool.open();
      const entries = await accept(spool, 'Subject: hi\r\n\r\nbody\r\n', [draft('a.test', ['x@a.test', 'y@a.test']), draft('b.test', ['z@b.test'])]);
      assert.equal(entries.length, 2);
      assert.equal(entries[0].messageId, entries[1].messageId);
      assert.notEqual(entries[0].id, entries[1].id);
      assert.equal(entries[0].size, 'Subject: hi\r\n\r\nbody\r\n'.length);
      const reopened = make(key);
      const report = await reopened.open();
      assert.deepEqual(report.entries.map((e) => e.id).sort(), entries.map((e) => e.id).sort());
      const b = report.entries.find((e) => e.domain === 'b.test')!;
      assert.equal(await text(reopened.readBody(b)), 'Subject: hi\r\n\r\nbody\r\n');
      assert.deepEqual(b.dsn, { ret: 'HDRS' });
      assert.equal(b.bodyType, '8bitmime');
    });

    it('persists state updates', async () => {
      const key = fresh();
      const spool = make(key);
      await spool.open();
      const [e] = await accept(spool, 'x\r\n', [draft('a.test', ['x@a.test', 'y@a.test'])]);
      e.attempts = 2;
      e.tempFailures = 1;
      e.nextAttemptAt = 42;
      e.recipients[0].state = 'delivered';
      e.recipients[0].lastReply = { code: 250, enhanced: '2.0.0', text: 'ok' };
      e.recipients[1].state = 'deferred';
      await spool.update(e);
      const [again] = (await make(key).open()).entries;
      assert.deepEqual(again, e);
    });

    it('removes the body only with the last entry of the message', async () => {
      const key = fresh();
      const spool = make(key);
      await spool.open();
      const [a, b] = await accept(spool, 'shared\r\n', [draft('a.test', ['x@a.test']), draft('b.test', ['y@b.test'])]);
      await spool.remove(a);
      assert.equal(await text(spool.readBody(b)), 'shared\r\n');
      await spool.remove(b);
      const report = await make(key).open();
      assert.equal(report.entries.length, 0);
      assert.equal(report.removedOrphanBodies, 0, 'nothing was left behind to clean up');
    });

    it('keeps nothing of an aborted message', async () => {
      const key = fresh();
      const spool = make(key);
      await spool.open();
      const incoming = await spool.receive();
      incoming.body.write('partial');
      await incoming.abort();
      const report = await make(key).open();
      assert.equal(report.entries.length, 0);
      assert.equal(report.removedTemporary, 0);
    });
  });
}
