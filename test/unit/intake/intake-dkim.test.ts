import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { text } from 'node:stream/consumers';
import { Writable } from 'node:stream';
import type { Disposition, Envelope } from '../../../src/core/index.js';
import { systemClock } from '../../../src/core/index.js';
import { DispositionSink, createLogger } from '../../../src/log/index.js';
import { Intake } from '../../../src/intake/index.js';
import { DkimSigningPool } from '../../../src/dkim/index.js';
import { MemorySpool } from '../../../src/spool/index.js';
import type { DkimConfig } from '../../../src/config/index.js';
import { DEFAULT_DKIM_HEADERS } from '../../../src/config/index.js';
import { makeDkimKey } from '../../helpers/dkim.js';

const logged: Record<string, unknown>[] = [];
const logger = createLogger({ destination: new Writable({ write: (c: Buffer, _e, cb) => (logged.push(JSON.parse(c.toString())), cb()) }) as never });
const envelope: Envelope = { sender: 'app@sig.test', recipients: [{ address: 'a@one.test' }, { address: 'b@two.test' }], dsn: {}, smtpUtf8: false, bodyType: '8bitmime' };
const smtp = { kind: 'smtp' as const, client: { address: '192.0.2.7', helo: 'client.example', tls: false } };

function config(selector: string): DkimConfig {
  const section = (algorithm: 'rsa-sha256' | 'ed25519-sha256', s: string) => ({
    section: 'sig.test', domain: 'sig.test', selector: s, keyFile: 'k.pem', keyPath: '/k.pem', algorithm,
    headers: [...DEFAULT_DKIM_HEADERS], oversign: ['from'], canonicalization: 'relaxed/relaxed' as const,
    privateKey: Buffer.from(makeDkimKey(algorithm, 1024)),
  });
  return { sign_by: 'from', domains: new Map([['sig.test', [section('rsa-sha256', selector), section('ed25519-sha256', `${selector}e`)]]]) };
}

describe('intake: DKIM signing before the commit', () => {
  const pool = new DkimSigningPool(config('s1'), 1);
  after(() => pool.close());

  async function setup() {
    const spool = new MemorySpool();
    await spool.open();
    const events: Disposition[] = [];
    const dispositions = new DispositionSink(logger);
    dispositions.subscribe({ event: (e) => void events.push(e) });
    const intake = new Intake({ spool, dispositions, clock: systemClock, alwaysSplit: () => false, logger, dkim: pool });
    intake.handTo({ add: () => undefined });
    const insert = async (message: string, chunk = 7) => {
      const incoming = await intake.receive();
      for (let at = 0; at < message.length; at += chunk) incoming.body.write(message.slice(at, at + chunk));
      return intake.insert(incoming, { envelope, headerMessageId: null, reason: smtp });
    };
    return { spool, events, insert };
  }

  it('every entry carries the signature fields, sent in front of the body; the Reception names them; a reload signs the next message with the new keys', async () => {
    const { spool, events, insert } = await setup();
    const message = 'From: App <app@sig.test>\r\nSubject: hi\r\n\r\nbody\r\n';
    const entries = await insert(message);
    assert.equal(entries.length, 2);
    for (const e of entries) {
      assert.match(e.headerPrefix ?? '', /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=sig\.test;[^]*\r\nDKIM-Signature: v=1; a=ed25519-sha256;[^]*\r\n$/);
      assert.equal(await text(spool.bodyStream(e)), e.headerPrefix + message);
      assert.equal(e.size, Buffer.byteLength(e.headerPrefix + message));
    }
    const reception = events.find((e) => e.kind === 'Reception');
    assert.deepEqual(reception?.kind === 'Reception' && reception.dkim, [
      { domain: 'sig.test', selector: 's1', algorithm: 'rsa-sha256' },
      { domain: 'sig.test', selector: 's1e', algorithm: 'ed25519-sha256' },
    ]);
    pool.update(config('s2'));
    const [next] = await insert(message, 4096);
    assert.match(next.headerPrefix ?? '', /s=s2;[^]*s=s2e;/);
  });

  it('a message that cannot be signed is queued all the same, unsigned, and told', async () => {
    const { events, insert } = await setup();
    const [entry] = await insert('Subject: no from\r\n\r\nbody\r\n');
    assert.equal(entry.headerPrefix, undefined);
    const reception = events.find((e) => e.kind === 'Reception');
    assert.equal(reception?.kind === 'Reception' && reception.dkim, undefined);
    const told = logged.find((r) => r.msg === 'DKIM: message queued unsigned' && r.id === entry.messageId);
    assert.deepEqual(told?.problems, ['no From: address']);
  });
});
