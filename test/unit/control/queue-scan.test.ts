import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { addressMatcher, entriesOfMessages, isMessageId } from '../../../src/control/queue-scan.js';
import type { EntryHead } from '../../../src/spool/index.js';

describe('queue-scan: the ids and addresses an operator types', () => {
  it('matches an address exactly except for the domain part, @domain and <>', () => {
    const exact = addressMatcher('App@Example.COM');
    assert.equal(exact.domain, 'example.com');
    assert.equal(exact.test('App@example.com'), true);
    assert.equal(exact.test('app@example.com'), false, 'the local part may be case sensitive (RFC 5321 §2.4)');
    assert.equal(exact.test('xApp@example.com'), false);
    assert.equal(exact.test('App@example.com.evil'), false);
    const domain = addressMatcher('@example.com');
    assert.equal(domain.test('anyone@EXAMPLE.com'), true);
    assert.equal(domain.test('anyone@sub.example.com'), false);
    const none = addressMatcher('<>');
    assert.equal(none.test(''), true);
    assert.equal(none.test('a@b.test'), false);
  });

  it('tells message ids from entry ids and finds every entry of a message in a sliced pass', async () => {
    assert.equal(isMessageId('MX5CLI990110DB374444'), true);
    assert.equal(isMessageId('MX5CLI990110DB374444.2'), false);
    const heads: EntryHead[] = [];
    for (let i = 0; i < 2500; i++) heads.push({ id: `M${i % 1000}.${Math.floor(i / 1000) + 1}`, messageId: `M${i % 1000}`, domain: 'd.test', queuedAt: 0, nextAttemptAt: 0, attempts: 0, tempFailures: 0 });
    const found = await entriesOfMessages(heads, new Set(['M7', 'M999', 'NOPE']));
    assert.deepEqual(found.get('M7'), ['M7.1', 'M7.2', 'M7.3']);
    assert.deepEqual(found.get('M999'), ['M999.1', 'M999.2']);
    assert.equal(found.has('NOPE'), false);
  });
});
