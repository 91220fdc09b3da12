import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeEntry, encodeEntry } from '../../../src/spool/index.js';

/** An entry's state file as Tern wrote it before QueueEntry.siblings was renamed. */
const WRITTEN_BEFORE_RENAME =
  '{"v":1,"id":"M1.2","messageId":"M1","domain":"b.test","sender":"a@client.test",' +
  '"recipients":[{"address":"y@b.test","state":"deferred","lastReply":{"code":451,"enhanced":"4.4.1","text":"later"}}],' +
  '"dsn":{"ret":"HDRS"},"smtpUtf8":false,"bodyType":"7bit","queuedAt":1700000000000,"size":10,"siblings":3,' +
  '"attempts":1,"tempFailures":1,"nextAttemptAt":1700000600000}';

describe('entry codec', () => {
  it('reads a queue file written before the rename: the count of the message\'s entries is still `siblings` on disk', () => {
    const entry = decodeEntry(WRITTEN_BEFORE_RENAME);
    assert.equal(entry.entriesOfMessage, 3);
    assert.equal(entry.id, 'M1.2');
    assert.equal(entry.recipients[0].lastReply?.code, 451);
  });

  it('writes the same key, so that a Tern from before the rename reads what this one writes', () => {
    const entry = decodeEntry(WRITTEN_BEFORE_RENAME);
    assert.deepEqual(JSON.parse(encodeEntry(entry)), JSON.parse(WRITTEN_BEFORE_RENAME));
    assert.deepEqual(decodeEntry(encodeEntry(entry)), entry);
  });
});
