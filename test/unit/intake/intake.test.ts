import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Disposition, Envelope } from '../../../src/core/index.js';
import { systemClock } from '../../../src/core/index.js';
import { DispositionSink, createLogger, dispositionRecord } from '../../../src/log/index.js';
import { Intake, MESSAGE_ID_MAX, messageIdHeader } from '../../../src/intake/index.js';
import { DiskSpool, decodeEntry, encodeEntry } from '../../../src/spool/index.js';
import type { EntryHead, QueueEntry } from '../../../src/spool/index.js';
import { tempDir } from '../../helpers/temp-dir.js';

const silent = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) as never });
const envelope: Envelope = {
  sender: 'app@src.test',
  recipients: [{ address: 'a@one.test' }, { address: 'b@two.test', dsn: { notify: ['FAILURE'] } }, { address: 'c@ONE.test' }],
  dsn: { ret: 'HDRS', envid: 'env-1' },
  smtpUtf8: false,
  bodyType: '7bit',
};
const smtp = { kind: 'smtp' as const, client: { address: '192.0.2.7', helo: 'client.example', tls: false } };

/** A real spool in a temp dir, an intake in front of it, and what it tells and hands over. */
async function setup(alwaysSplit = false) {
  const root = join(tempDir('tern-intake-'), 'queue');
  const spool = new DiskSpool(root);
  await spool.open();
  const events: Disposition[] = [];
  const handed: QueueEntry[][] = [];
  const dispositions = new DispositionSink(silent);
  dispositions.subscribe({ event: (e) => void events.push(e) });
  let split = alwaysSplit;
  const intake = new Intake({ spool, dispositions, clock: systemClock, alwaysSplit: () => split });
  const connect = () =>
    intake.handTo({
      add: (entries) => {
        // Handed over only once told: the Reception comes first.
        assert.equal(events.at(-1)?.kind, 'Reception');
        handed.push([...entries]);
      },
    });
  const insert = async (headers = 'Message-ID: <m1@src.test>\r\n') => {
    const incoming = await intake.receive();
    incoming.body.end(`${headers}Subject: t\r\n\r\nbody\r\n`);
    return intake.insert(incoming, { envelope, headerMessageId: messageIdHeader(headers), reason: smtp });
  };
  /** What a restarted Tern finds in the queue directory. */
  const reopened = async () => {
    await spool.close();
    const again = new DiskSpool(root);
    await again.open();
    const heads: EntryHead[] = [];
    await again.recover({ onBatch: (batch) => heads.push(...batch) });
    const entries = await Promise.all(heads.map((h) => again.load(h.id)));
    await again.close();
    return entries;
  };
  return { root, intake, connect, insert, events, handed, reopened, setSplit: (v: boolean) => (split = v) };
}

describe('Intake', () => {
  it('splits the envelope by domain, commits, tells one Reception and hands the entries over', async () => {
    const { connect, insert, events, handed, reopened } = await setup();
    connect();
    const entries = await insert();
    assert.deepEqual(entries.map((e) => [e.domain, e.recipients.map((r) => r.address)]), [['one.test', ['a@one.test', 'c@ONE.test']], ['two.test', ['b@two.test']]]);
    assert.deepEqual(handed, [entries]);
    assert.equal(events.length, 1);
    const record = dispositionRecord(events[0]);
    assert.deepEqual(
      { ...record, queued_at: undefined },
      {
        type: 'Reception',
        id: entries[0].messageId,
        message_id: entries[0].messageId,
        message_id_header: '<m1@src.test>',
        sender: 'app@src.test',
        recipients: ['a@one.test', 'b@two.test', 'c@ONE.test'],
        response: { code: 250, enhanced_code: '2.0.0', content: `Queued as ${entries[0].messageId}` },
        size: entries[0].size,
        queued_at: undefined,
        client: { address: '192.0.2.7', helo: 'client.example', user: undefined, tls: false },
      },
    );
    // Durable as handed over: a restart finds the same entries, DSN parameters and Message-ID included.
    const found = await reopened();
    assert.deepEqual(found.map((e) => [e.id, e.headerMessageId, e.dsn, e.recipients.map((r) => r.dsn)]), [
      [entries[0].id, '<m1@src.test>', { ret: 'HDRS', envid: 'env-1' }, [undefined, undefined]],
      [entries[1].id, '<m1@src.test>', { ret: 'HDRS', envid: 'env-1' }, [{ notify: ['FAILURE'] }]],
    ]);
  });

  it('follows always_split as it is at each message', async () => {
    const { connect, insert, setSplit } = await setup();
    connect();
    assert.equal((await insert()).length, 2);
    setSplit(true);
    assert.equal((await insert()).length, 3);
  });

  it('stores no Message-ID for a message without one, and its records say null', async () => {
    const { connect, insert, events, reopened } = await setup();
    connect();
    const [entry] = await insert('');
    assert.equal(entry.headerMessageId, undefined);
    assert.equal(dispositionRecord(events[0]).message_id_header, null);
    assert.equal((await reopened())[0].headerMessageId, undefined);
  });

  it('refuses a message before the scheduler is connected, and leaves nothing on disk', async () => {
    const { root, insert, events, reopened } = await setup();
    await assert.rejects(insert());
    assert.equal(events.length, 0);
    assert.deepEqual(await reopened(), []);
    assert.deepEqual(readdirSync(join(root, 'tmp')), []);
  });
});

describe('the Message-ID of queue entries', () => {
  it('an entry written before the field existed still loads, and its dispositions say null', () => {
    const entry: QueueEntry = {
      id: 'M1.1', messageId: 'M1', domain: 'd.test', sender: 's@x.test', recipients: [{ address: 'r@d.test', state: 'pending' }],
      dsn: {}, smtpUtf8: false, bodyType: '7bit', queuedAt: 0, size: 1, entriesOfMessage: 1, attempts: 0, tempFailures: 0, nextAttemptAt: 0,
    };
    const old = decodeEntry(encodeEntry(entry));
    assert.equal(old.headerMessageId, undefined);
    const record = dispositionRecord({ kind: 'Bounce', entry: old, recipient: 'r@d.test', attempt: 0, reply: { code: 550, text: 'no' }, tls: false, at: new Date(0) });
    assert.equal(record.message_id_header, null);
    assert.equal(decodeEntry(encodeEntry({ ...entry, headerMessageId: '<x@y>' })).headerMessageId, '<x@y>');
  });

  it('takes the first Message-ID field as written, unfolded, and cut to its bound', () => {
    assert.equal(messageIdHeader('Subject: a\r\nMessage-ID: <a@b>\r\nMessage-ID: <second@b>\r\n'), '<a@b>');
    assert.equal(messageIdHeader('message-id:<a@b> \r\n'), '<a@b>');
    assert.equal(messageIdHeader('Message-Id:\r\n  <folded@b>\r\nSubject: x\r\n'), '<folded@b>');
    assert.equal(messageIdHeader('Message-ID: not even an id\r\n'), 'not even an id');
    assert.equal(messageIdHeader('Resent-Message-ID: <r@b>\r\nX-Message-ID: <x@b>\r\n'), null);
    assert.equal(messageIdHeader('Message-ID:   \r\n'), null);
    assert.equal(messageIdHeader(''), null);
    const long = messageIdHeader(`Message-ID: <${'x'.repeat(100_000)}@b>\r\n`)!;
    assert.equal(long.length, MESSAGE_ID_MAX);
    assert.ok(long.startsWith('<xxx'));
  });
});
