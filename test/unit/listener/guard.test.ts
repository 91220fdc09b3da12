import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MessageGuard } from '../../../src/listener/message-guard.js';
import { splitEnvelope } from '../../../src/listener/index.js';

async function run(chunks: string[], maxReceived = 5, maxBytes = 1e6) {
  const guard = new MessageGuard(maxReceived, maxBytes);
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks.map((c) => Buffer.from(c, 'latin1'))), guard, new Writable({ write: (c, _e, cb) => (out.push(c), cb()) }));
  return { violation: guard.violation, body: Buffer.concat(out).toString('latin1') };
}

describe('MessageGuard', () => {
  it('passes a clean CRLF message through unchanged, even split mid CRLF', async () => {
    const r = await run(['Subject: a\r', '\n\r\nline one\r\nline two\r', '\n']);
    assert.equal(r.violation, undefined);
    assert.equal(r.body, 'Subject: a\r\n\r\nline one\r\nline two\r\n');
  });
  it('refuses bare LF, bare CR (also across chunks) and NUL', async () => {
    assert.match((await run(['Subject: a\r\n\r\nx\n.\nMAIL FROM:<e@x>\r\n'])).violation!.text, /bare LF/);
    assert.match((await run(['Subject: a\r\n\r\nx\r', 'y\r\n'])).violation!.text, /bare CR/);
    assert.match((await run(['Subject: a\r\n\r\nx\r'])).violation!.text, /bare CR/);
    assert.match((await run(['Subject: a\r\n\r\nx\u0000y\r\n'])).violation!.text, /NUL/);
    assert.equal((await run(['Subject: a\r\n\r\nx\n'])).violation!.code, 554);
  });
  it('counts Received headers only in the header section', async () => {
    const hops = 'Received: from x\r\n'.repeat(6);
    assert.equal((await run([hops + 'Subject: loop\r\n\r\nbody\r\n'])).violation?.enhanced, '5.4.6');
    assert.equal((await run(['Subject: ok\r\n\r\n' + hops])).violation, undefined);
  });
  it('stops at the size limit', async () => {
    const r = await run(['Subject: a\r\n\r\n', 'x'.repeat(100) + '\r\n'], 5, 50);
    assert.equal(r.violation?.code, 552);
    assert.equal(r.violation?.enhanced, '5.3.4');
  });
});

describe('splitEnvelope', () => {
  const env = {
    sender: 's@x.test',
    recipients: [{ address: 'a@one.test' }, { address: 'b@two.test' }, { address: 'c@ONE.test' }],
    dsn: {}, smtpUtf8: false, bodyType: '7bit' as const,
  };
  it('groups recipients by domain', () => {
    const drafts = splitEnvelope(env, false);
    assert.deepEqual(drafts.map((d) => [d.domain, d.recipients.map((r) => r.address)]), [['one.test', ['a@one.test', 'c@ONE.test']], ['two.test', ['b@two.test']]]);
  });
  it('makes one entry per recipient with always_split', () => {
    assert.equal(splitEnvelope(env, true).length, 3);
  });
});
