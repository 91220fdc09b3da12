import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { generateDsn } from '../../../src/dsn/index.js';
import type { DsnEvent, DsnParams } from '../../../src/dsn/index.js';
import { REPO_ROOT } from '../../helpers/tern-process.js';
import { mimeTypes } from '../../helpers/mime.js';

const FIXTURES = join(REPO_ROOT, 'test/fixtures/dsn');

const params: DsnParams = {
  enableBounce: true,
  enableExpiration: true,
  includeOriginal: 'FullContent',
  reportingMta: { type: 'dns', name: 'mta1.example.com' },
  stableContent: true,
  me: 'mta1.example.com',
  pid: 4242,
};

const ORIGINAL = Buffer.from('Content-Type: text/plain;\r\n\tcharset="us-ascii"\r\nSubject: Hello!\r\n\r\nhello there\r\n');
const arrival = new Date('2003-07-01T08:52:37Z');
const last = new Date('2003-07-01T10:52:37Z');

const bounce: DsnEvent = {
  kind: 'bounce',
  messageId: 'MSGID1',
  sender: 'sender@sender.example.com',
  arrival,
  now: last,
  smtpUtf8: false,
  recipients: [{ address: 'recip@target.example.com', reply: { code: 550, enhanced: '5.7.1', text: 'no thanks' }, remoteMta: { name: 'target.example.com', address: '42.42.42.42' }, lastAttempt: last }],
};

const expiration: DsnEvent = {
  ...bounce,
  kind: 'expiration',
  recipients: [{
    address: 'recip@target.example.com',
    reply: { code: 551, enhanced: '5.4.7', text: 'Next delivery time would be at SOME TIME which exceeds the expiry time EXPIRES configured via set_scheduling' },
    lastAttempt: last,
  }],
};

/** Compares with the golden file; UPDATE_GOLDEN=1 rewrites it (review the diff before committing). */
function golden(name: string, bytes: Buffer): void {
  const path = join(FIXTURES, name);
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(path)) writeFileSync(path, bytes);
  assert.equal(bytes.toString('latin1'), readFileSync(path).toString('latin1'), `differs from ${name}`);
}

/** mailparser for the decoded text, mailsplit for the MIME structure (the top part excluded). */
async function parsed(bytes: Buffer) {
  const mail = await simpleParser(bytes);
  const [top, human, ...types] = await mimeTypes(bytes);
  assert.equal(top, 'multipart/report');
  assert.equal(human, 'text/plain');
  return { mail, types };
}

describe('RFC 3464 reports', () => {
  it('bounce with the full original, as the seed sample', async () => {
    const dsn = generateDsn(params, bounce, { bytes: ORIGINAL, complete: true })!;
    golden('bounce-full.eml', dsn.bytes);
    const text = dsn.bytes.toString();
    assert.match(text, /^Content-Type: multipart\/report;\r\n\tboundary="report-boundary";\r\n\treport-type="delivery-status"\r\nSubject: Returned mail\r\n/);
    assert.match(text, /\r\nFinal-Recipient: rfc822;recip@target\.example\.com\r\nAction: failed\r\nStatus: 5\.7\.1 \(no thanks\)\r\nRemote-MTA: dns; target\.example\.com\r\nDiagnostic-Code: smtp; 550 5\.7\.1 no thanks\r\nLast-Attempt-Date: Tue, 1 Jul 2003 10:52:37 \+0000\r\n/);
    assert.match(text, /\r\nAuto-Submitted: auto-replied\r\n/);
    assert.doesNotMatch(text.replace(/\r\n/g, ''), /\n/, 'CRLF line ends only');
    const { mail, types } = await parsed(dsn.bytes);
    assert.equal(mail.subject, 'Returned mail');
    assert.equal(mail.to && !Array.isArray(mail.to) ? mail.to.text : '', 'sender@sender.example.com');
    assert.match(mail.text ?? '', /While communicating with target\.example\.com \(42\.42\.42\.42\):\nResponse: 550 5\.7\.1 no thanks/);
    assert.deepEqual(types, ['message/delivery-status', 'message/rfc822']);
    assert.equal(dsn.eightBit, false);
  });

  it('expiration with headers only, long lines quoted-printable', async () => {
    const dsn = generateDsn({ ...params, includeOriginal: 'HeadersOnly' }, expiration, { bytes: ORIGINAL, complete: true })!;
    golden('expiration-headers.eml', dsn.bytes);
    const { mail, types } = await parsed(dsn.bytes);
    assert.match(mail.text ?? '', /Status: 551 5\.4\.7 Next delivery time would be at SOME TIME which exceeds the expiry time EXPIRES configured via set_scheduling/);
    assert.deepEqual(types, ['message/delivery-status', 'text/rfc822-headers']);
    assert.ok(dsn.bytes.toString().split('\r\n').every((l) => l.length <= 78), 'no line over 78 characters');
    const headers = dsn.bytes.toString().split('Content-Type: text/rfc822-headers\r\n\r\n')[1];
    assert.match(headers, /Subject: Hello!/);
    assert.doesNotMatch(headers, /hello there/);
  });

  it('no original at all with include_original_message=No', async () => {
    const dsn = generateDsn({ ...params, includeOriginal: 'No' }, bounce, { bytes: ORIGINAL, complete: true })!;
    golden('bounce-no-original.eml', dsn.bytes);
    assert.deepEqual((await parsed(dsn.bytes)).types, ['message/delivery-status']);
  });

  it('lists every failed recipient of the event in one report', async () => {
    const multi: DsnEvent = {
      ...bounce,
      envid: 'QQ314159',
      recipients: [
        bounce.recipients[0],
        { address: 'other@target.example.com', orcpt: 'rfc822;Other@Target.example.com', reply: { code: 552, enhanced: '5.2.2', text: 'Mailbox (really) full' }, remoteMta: { name: 'target.example.com', address: '42.42.42.42' }, lastAttempt: last },
        { address: 'dns@gone.example', reply: { code: 550, enhanced: '5.1.2', text: 'domain gone.example does not exist (NXDOMAIN)' }, lastAttempt: last },
      ],
    };
    const dsn = generateDsn(params, multi, { bytes: ORIGINAL, complete: true })!;
    golden('bounce-multi.eml', dsn.bytes);
    const text = dsn.bytes.toString();
    assert.equal(text.match(/^Final-Recipient: /gm)?.length, 3);
    assert.match(text, /Original-Envelope-Id: QQ314159/);
    assert.match(text, /Original-Recipient: rfc822;Other@Target\.example\.com\r\nFinal-Recipient: rfc822;other@target\.example\.com/);
    assert.match(text, /Status: 5\.2\.2 \(Mailbox \\\(really\\\) full\)/);
    assert.deepEqual(dsn.reported, ['recip@target.example.com', 'other@target.example.com', 'dns@gone.example']);
  });

  it('returns 8-bit and UTF-8 originals without re-encoding them (RFC 6533 message/global)', async () => {
    const eight = Buffer.from('Subject: caf\u00e9\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nd\u00e9j\u00e0 vu\r\n', 'utf8');
    const dsn8 = generateDsn(params, bounce, { bytes: eight, complete: true })!;
    golden('bounce-8bit.eml', dsn8.bytes);
    assert.equal(dsn8.eightBit, true);
    assert.match(dsn8.bytes.toString(), /Content-Type: message\/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n/);
    assert.ok(dsn8.bytes.includes(eight), 'the original bytes are inside, untouched');

    const utf8: DsnEvent = { ...bounce, smtpUtf8: true, sender: 'j\u00f6rg@sender.example.com', recipients: [{ ...bounce.recipients[0], address: '\u7528\u6237@target.example.com' }] };
    const dsnU = generateDsn(params, utf8, { bytes: eight, complete: true })!;
    golden('bounce-smtputf8.eml', dsnU.bytes);
    assert.equal(dsnU.smtpUtf8, true);
    const { mail, types } = await parsed(dsnU.bytes);
    assert.deepEqual(types, ['message/global-delivery-status', 'message/global']);
    assert.match(mail.text ?? '', /addressed to \u7528\u6237@target\.example\.com/);
  });

  it('honours RET=HDRS and the size limit by returning headers only', () => {
    const hdrs = generateDsn(params, { ...bounce, ret: 'HDRS' }, { bytes: ORIGINAL, complete: true })!;
    assert.match(hdrs.bytes.toString(), /Content-Type: text\/rfc822-headers/);
    const cut = generateDsn(params, bounce, { bytes: ORIGINAL.subarray(0, 60), complete: false })!;
    assert.match(cut.bytes.toString(), /Content-Type: text\/rfc822-headers/);
  });

  it("fills Haraka's bounce template for the human part", async () => {
    const template = 'Hi {from},\n\nyour message {msgid} to {to} bounced: {reason}\n-- {me} (pid {pid}) at {date} {unknown}\n';
    const dsn = generateDsn({ ...params, template }, bounce, { bytes: ORIGINAL, complete: true })!;
    golden('bounce-template.eml', dsn.bytes);
    const { mail } = await parsed(dsn.bytes);
    // mailparser runs message/delivery-status on as text after the human part; the human part comes first.
    assert.ok(mail.text?.startsWith('Hi sender@sender.example.com,\n\nyour message MSGID1 to recip@target.example.com bounced: 550 5.7.1 no thanks\n-- mta1.example.com (pid 4242) at Tue, 1 Jul 2003 10:52:37 +0000 {unknown}\n'));
  });

  it('delay and success reports say delayed and delivered', () => {
    const delay = generateDsn(params, { ...bounce, kind: 'delay', retryUntil: new Date('2003-07-06T08:52:37Z'), recipients: [{ ...bounce.recipients[0], reply: { code: 451, enhanced: '4.2.1', text: 'busy' } }] })!;
    assert.match(delay.bytes.toString(), /Action: delayed\r\nStatus: 4\.2\.1 \(busy\)/);
    assert.match(delay.bytes.toString(), /Will-Retry-Until: Sun, 6 Jul 2003 08:52:37 \+0000/);
    assert.match(delay.bytes.toString(), /Subject: Delayed mail/);
    const success = generateDsn(params, { ...bounce, kind: 'success', recipients: [{ ...bounce.recipients[0], notify: ['SUCCESS'], reply: { code: 250, enhanced: '2.0.0', text: 'ok' } }] })!;
    assert.match(success.bytes.toString(), /Action: delivered\r\nStatus: 2\.0\.0 \(ok\)/);
  });

  it('makes no report when none is due', () => {
    assert.equal(generateDsn({ ...params, enableBounce: false }, bounce), undefined);
    assert.equal(generateDsn({ ...params, enableExpiration: false }, expiration), undefined);
    assert.equal(generateDsn(params, { ...bounce, sender: '' }), undefined, 'never bounce a bounce');
    assert.equal(generateDsn(params, { ...bounce, recipients: [{ ...bounce.recipients[0], notify: ['NEVER'] }] }), undefined);
    assert.equal(generateDsn(params, { ...bounce, recipients: [{ ...bounce.recipients[0], notify: ['SUCCESS'] }] }), undefined);
    assert.equal(generateDsn(params, { ...bounce, kind: 'success' }), undefined, 'success only on request');
  });

  it('is byte-for-byte stable with stable_content, and unique without it', () => {
    const a = generateDsn(params, bounce, { bytes: ORIGINAL, complete: true })!.bytes;
    assert.deepEqual(a, generateDsn(params, bounce, { bytes: ORIGINAL, complete: true })!.bytes);
    const x = generateDsn({ ...params, stableContent: false }, bounce)!.bytes.toString();
    const y = generateDsn({ ...params, stableContent: false }, bounce)!.bytes.toString();
    assert.notEqual(x.match(/Message-ID: .*/)![0], y.match(/Message-ID: .*/)![0]);
    assert.doesNotMatch(x, /report-boundary/);
  });
});
