import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { receivedHeader } from '../../../src/listener/received-header.js';

const base = { helo: 'client.test', clientAddress: '192.0.2.7', me: 'mta.test', text: 'Tern', messageId: 'ABC', date: new Date('2026-01-02T03:04:05Z') };
const protocol = (tls: boolean, authenticated: boolean, smtpUtf8?: boolean) => /\bwith (\S+) id ABC;/.exec(receivedHeader({ ...base, tls, authenticated, smtpUtf8 }))![1];

describe('Received header', () => {
  it('names the protocol after RFC 3848: ESMTP, ESMTPS, ESMTPA, ESMTPSA', () => {
    assert.deepEqual([protocol(false, false), protocol(true, false), protocol(false, true), protocol(true, true)], ['ESMTP', 'ESMTPS', 'ESMTPA', 'ESMTPSA']);
  });

  it('names an SMTPUTF8 transaction after RFC 6531 §3.7.3: UTF8SMTP, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA', () => {
    assert.deepEqual([protocol(false, false, true), protocol(true, false, true), protocol(false, true, true), protocol(true, true, true)], ['UTF8SMTP', 'UTF8SMTPS', 'UTF8SMTPA', 'UTF8SMTPSA']);
    assert.equal(protocol(true, false, false), 'ESMTPS');
  });
});
