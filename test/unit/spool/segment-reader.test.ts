import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeRecord, readSegment } from '../../../src/spool/segment-file.js';
import type { QueueEntry } from '../../../src/spool/index.js';

const entry = (messageId: string, size: number): QueueEntry => ({
  id: `${messageId}.1`,
  messageId,
  domain: 'a.test',
  sender: 'sender@client.test',
  recipients: [{ address: 'r@a.test', state: 'pending' }],
  dsn: {},
  smtpUtf8: false,
  bodyType: '7bit',
  queuedAt: 1_700_000_000_000,
  size,
  entriesOfMessage: 1,
  attempts: 0,
  tempFailures: 0,
  nextAttemptAt: 1_700_000_000_000,
});

/** Five records of different sizes, as appended one after the other. */
function segment(): Buffer {
  const records: Buffer[] = [];
  for (let i = 0; i < 5; i++) {
    const body = Buffer.from(`Subject: m${i}\r\n\r\nbody ${i} ${'z'.repeat(i * 7)}\r\n`);
    records.push(Buffer.concat(encodeRecord([body], body.length, [entry(`M${i}`, body.length)])));
  }
  return Buffer.concat(records);
}

const kinds = (data: Buffer) => [...readSegment(data)];

describe('segment reader: damage versus a torn tail', () => {
  it('reports any flipped bit anywhere as damage, never as a torn tail, and keeps every other record', () => {
    const data = segment();
    for (let pos = 0; pos < data.length; pos++) {
      for (const bit of [0x01, 0x20, 0x80]) {
        const damaged = Buffer.from(data);
        damaged[pos] ^= bit;
        const items = kinds(damaged);
        const where = `byte ${pos} ^ 0x${bit.toString(16)}`;
        assert.ok(!items.some((i) => i.kind === 'torn'), `${where}: taken for a torn tail`);
        assert.equal(items.filter((i) => i.kind === 'damaged').length, 1, `${where}: ${items.map((i) => i.kind).join(' ')}`);
        assert.equal(items.filter((i) => i.kind === 'record').length, 4, `${where}: records lost`);
      }
    }
  });

  it('reads every cut-short segment (a crash mid-append) as whole records and at most a torn tail, never damage', () => {
    const data = segment();
    for (let length = 0; length <= data.length; length++) {
      const items = kinds(data.subarray(0, length));
      assert.ok(!items.some((i) => i.kind === 'damaged'), `cut at ${length}: ${items.map((i) => i.kind).join(' ')}`);
    }
  });
});
