import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { text } from 'node:stream/consumers';
import { EntryNotFoundError } from '../../src/spool/index.js';
import type { EntryDraft, EntryHead, Spool } from '../../src/spool/index.js';

export const draft = (domain: string, addresses: string[]): EntryDraft => ({
  domain,
  sender: 'sender@client.test',
  recipients: addresses.map((address) => ({ address, state: 'pending' })),
  dsn: { ret: 'HDRS' },
  smtpUtf8: false,
  bodyType: '8bitmime',
});

export async function accept(spool: Spool, body: string, drafts: EntryDraft[]) {
  const incoming = await spool.receive();
  incoming.body.write(body);
  return incoming.commit(drafts, 1_700_000_000_000);
}

/** A restart: open, read everything back, and load each live entry whole. */
export async function restart(spool: Spool) {
  await spool.open();
  const heads: EntryHead[] = [];
  const report = await spool.recover({ onBatch: (batch) => heads.push(...batch) });
  const entries = await Promise.all(heads.map((h) => spool.load(h.id)));
  return { ...report, heads, entries };
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
      const report = await restart(reopened);
      assert.equal(report.recovered, 2);
      assert.deepEqual(report.entries.map((e) => e.id).sort(), entries.map((e) => e.id).sort());
      assert.deepEqual(report.entries.sort((x, y) => x.id.localeCompare(y.id)), entries, 'read back exactly as queued');
      const b = report.entries.find((e) => e.domain === 'b.test')!;
      assert.equal(await text(reopened.bodyStream(b)), 'Subject: hi\r\n\r\nbody\r\n');
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
      const [again] = (await restart(make(key))).entries;
      assert.deepEqual(again, e);
      assert.deepEqual(await spool.load(e.id), e, 'load() sees the update too');
    });

    it('keeps an entry as last committed or updated, whatever the caller does to its copy', async () => {
      const key = fresh();
      const spool = make(key);
      await spool.open();
      const [e] = await accept(spool, 'x\r\n', [draft('a.test', ['x@a.test'])]);
      const queued = structuredClone(e);
      e.attempts = 5;
      e.recipients[0].state = 'failed';
      assert.deepEqual(await spool.load(e.id), queued, 'not updated: the spool still has it as queued');
      const loaded = await spool.load(e.id);
      loaded.held = true;
      await spool.update(loaded);
      loaded.held = false;
      assert.equal((await spool.load(e.id)).held, true);
      assert.equal((await restart(make(key))).entries[0].held, true);
    });

    it('gives the same bytes as a stream and for sending, small or large', async () => {
      const key = fresh();
      const spool = make(key);
      await spool.open();
      for (const body of ['', 'Subject: small\r\n\r\nbody\r\n', `${'L'.repeat(998)}\r\n`.repeat(400)]) {
        const [e] = await accept(spool, body, [draft('a.test', ['x@a.test'])]);
        assert.equal(e.size, Buffer.byteLength(body));
        const forSending = spool.bodyBytesOrStream(e);
        assert.equal(Buffer.isBuffer(forSending) ? forSending.toString() : await text(forSending), body);
        assert.equal(await text(spool.bodyStream(e)), body);
      }
    });

    it('sends an entry\'s header prefix (DKIM-Signature) in front of its body, small or large, before and after a restart', async () => {
      const key = fresh();
      const spool = make(key);
      await spool.open();
      const headerPrefix = 'DKIM-Signature: v=1; a=ed25519-sha256; d=a.test; s=s1;\r\n b=AAAA\r\n';
      for (const body of ['Subject: small\r\n\r\nbody\r\n', `Subject: large\r\n\r\n${`${'L'.repeat(998)}\r\n`.repeat(400)}`]) {
        const [e] = await accept(spool, body, [{ ...draft('a.test', ['x@a.test']), headerPrefix }]);
        assert.equal(e.size, Buffer.byteLength(headerPrefix + body), 'the size is what is sent');
        const forSending = spool.bodyBytesOrStream(e);
        assert.equal(Buffer.isBuffer(forSending) ? forSending.toString() : await text(forSending), headerPrefix + body);
        assert.equal(await text(spool.bodyStream(e)), headerPrefix + body);
      }
      const reopened = make(key);
      const { entries } = await restart(reopened);
      assert.equal(entries.length, 2);
      for (const e of entries) {
        assert.equal(e.headerPrefix, headerPrefix);
        assert.ok((await text(reopened.bodyStream(e))).startsWith(`${headerPrefix}Subject: `));
      }
    });

    it('removes the body only with the last entry of the message', async () => {
      const key = fresh();
      const spool = make(key);
      await spool.open();
      const [a, b] = await accept(spool, 'shared\r\n', [draft('a.test', ['x@a.test']), draft('b.test', ['y@b.test'])]);
      await spool.remove(a);
      assert.equal(await text(spool.bodyStream(b)), 'shared\r\n');
      assert.deepEqual((await restart(make(key))).entries.map((e) => e.id), [b.id], 'a restart in between finds only the other');
      await spool.remove(b);
      const report = await restart(make(key));
      assert.equal(report.entries.length, 0);
      assert.equal(report.removedOrphans, 0, 'nothing was left behind to clean up');
    });

    it('says "not found" for an entry whose message left the queue, or never was in it', async () => {
      const key = fresh();
      const spool = make(key);
      await spool.open();
      const notFound = (id: string) => (err: unknown) => err instanceof EntryNotFoundError && err.code === 'TERN_ERR_ENTRY_NOT_FOUND' && err.id === id;
      // A small body and one past any in-memory bound: stores may keep them apart.
      for (const body of ['small\r\n', `${'z'.repeat(998)}\r\n`.repeat(300)]) {
        const [a, b] = await accept(spool, body, [draft('a.test', ['x@a.test']), draft('b.test', ['y@b.test'])]);
        await spool.remove(a);
        assert.equal((await spool.load(b.id)).id, b.id, 'the other entry is still queued');
        await spool.remove(b);
        await assert.rejects(spool.load(b.id), notFound(b.id));
        await assert.rejects(spool.load(a.id), notFound(a.id));
      }
      await assert.rejects(spool.load('NEVERQUEUED.1'), notFound('NEVERQUEUED.1'));
      const reopened = make(key);
      await reopened.open();
      await assert.rejects(reopened.load('NEVERQUEUED.1'), notFound('NEVERQUEUED.1'));
    });

    it('keeps nothing of an aborted message', async () => {
      const key = fresh();
      const spool = make(key);
      await spool.open();
      const incoming = await spool.receive();
      incoming.body.write('partial');
      await incoming.abort();
      assert.equal((await make(key).open()).removedTemporary, 0);
      assert.equal((await restart(make(key))).entries.length, 0);
    });

    it('is usable while recovering: new messages are not read back twice, and removals during the scan hold', async () => {
      const key = fresh();
      const first = make(key);
      await first.open();
      const old: string[] = [];
      for (let i = 0; i < 300; i++) old.push(...(await accept(first, `old ${i}\r\n`, [draft('a.test', [`o${i}@a.test`]), draft('b.test', [`p${i}@b.test`])])).map((e) => e.id));
      const spool = make(key);
      await spool.open();
      const seen: EntryHead[] = [];
      let arriving: Promise<unknown> | undefined;
      const report = await spool.recover({
        onBatch: (heads) => {
          seen.push(...heads);
          // A message arriving mid-scan.
          arriving ??= accept(spool, 'new\r\n', [draft('c.test', ['n@c.test'])]);
        },
      });
      await arriving;
      assert.equal(report.recovered, 600);
      assert.deepEqual(seen.map((h) => h.id).sort(), [...old].sort(), 'every old entry once, no new one');
      const removed = await spool.load(seen[0].id);
      await spool.remove(removed);
      const again = await restart(make(key));
      assert.equal(again.entries.length, 600 - 1 + 1);
      assert.ok(!again.entries.some((e) => e.id === removed.id));
    });
  });
}
