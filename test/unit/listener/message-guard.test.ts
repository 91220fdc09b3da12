import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MessageGuard } from '../../../src/listener/message-guard.js';

async function run(chunks: string[], maxReceived = 5, maxBytes = 1e6) {
  const guard = new MessageGuard(maxReceived, maxBytes);
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks.map((c) => Buffer.from(c, 'latin1'))), guard, new Writable({ write: (c, _e, cb) => (out.push(c), cb()) }));
  return { violation: guard.violation, body: Buffer.concat(out).toString('latin1') };
}

describe('MessageGuard at the limits smtp.ini sets', () => {
  it('takes a message of exactly max_message_size bytes, and refuses one byte more without writing it', async () => {
    const msg = 'Subject: a\r\n\r\n' + 'x'.repeat(20) + '\r\n';
    const exact = await run([msg], 5, msg.length);
    assert.equal(exact.violation, undefined);
    assert.equal(exact.body, msg);
    const over = await run([msg, 'y'], 5, msg.length);
    assert.equal(over.violation?.code, 552);
    assert.equal(over.body, msg, 'nothing past the limit reaches the queue');
  });

  it('takes max_received_headers hops and refuses one more, counting case-insensitively across chunks', async () => {
    const hop = (i: number) => `${i % 2 ? 'received' : 'RECEIVED'}: from hop${i}\r\n`;
    const five = Array.from({ length: 5 }, (_, i) => hop(i)).join('');
    assert.equal((await run([five, 'Subject: ok\r\n\r\nbody\r\n'], 5)).violation, undefined);
    const six = five + hop(5);
    const r = await run([six.slice(0, 40), six.slice(40), 'Subject: loop\r\n\r\nbody\r\n'], 5);
    assert.deepEqual([r.violation?.code, r.violation?.enhanced], [554, '5.4.6']);
  });

  it('counts only Received: itself, not X-Received: or ARC headers that mention it', async () => {
    const others = 'X-Received: a\r\nARC-Seal: i=1; Received: b\r\n'.repeat(4);
    assert.equal((await run([others + 'Subject: ok\r\n\r\nbody\r\n'], 1)).violation, undefined);
  });

  it('counts the hops of a message that is all header section', async () => {
    assert.equal((await run(['Received: a\r\nReceived: b\r\n'], 1)).violation?.enhanced, '5.4.6');
  });

  it('refuses a bare LF that arrives as the first byte of a chunk after a complete line', async () => {
    assert.match((await run(['Subject: a\r\n\r\nx\r\n', '\n'])).violation!.text, /bare LF/);
  });
});
