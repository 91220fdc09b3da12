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

const TARGET = { name: 'target.example.com', address: '42.42.42.42' };

const bounce: DsnEvent = {
  kind: 'bounce',
  messageId: 'MSGID1',
  sender: 'sender@sender.example.com',
  arrival,
  now: last,
  smtpUtf8: false,
  recipients: [{ address: 'recip@target.example.com', reply: { code: 550, enhanced: '5.7.1', text: 'no thanks', remote: TARGET }, lastAttempt: last }],
};

const expiration: DsnEvent = {
  ...bounce,
  kind: 'expiration',
  recipients: [{
    address: 'recip@target.example.com',
    // The last real reply: the report quotes it, with Status 5.4.7, and makes up no 551.
    reply: { code: 450, enhanced: '4.2.1', text: '<recip@target.example.com>: Recipient address rejected: mailbox temporarily disabled, try again later', remote: TARGET },
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

/** The delivery-status part of a report: its header section and its body, as written. */
function statusPart(bytes: Buffer): { head: string; body: string } {
  const part = bytes.toString().split('--report-boundary\r\n')[2];
  const [head, body] = [part.slice(0, part.indexOf('\r\n\r\n') + 2), part.slice(part.indexOf('\r\n\r\n') + 4)];
  return { head, body };
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

  it('expiration quotes the last real reply with status 5.4.7, folded, 7bit', async () => {
    const dsn = generateDsn({ ...params, includeOriginal: 'HeadersOnly' }, expiration, { bytes: ORIGINAL, complete: true })!;
    golden('expiration-headers.eml', dsn.bytes);
    const { mail, types } = await parsed(dsn.bytes);
    assert.match(mail.text ?? '', /Status: 5\.4\.7 Delivery time expired\nWhile communicating with target\.example\.com \(42\.42\.42\.42\):\nResponse: 450 4\.2\.1 /);
    assert.deepEqual(types, ['message/delivery-status', 'text/rfc822-headers']);
    const status = statusPart(dsn.bytes);
    assert.match(status.head, /^Content-Type: message\/delivery-status\r\n$/, 'no charset, no transfer encoding: 7bit');
    assert.match(status.body, /\r\nAction: failed\r\nStatus: 5\.4\.7 \(delivery time expired\)\r\nRemote-MTA: dns; target\.example\.com\r\nDiagnostic-Code: smtp; 450 4\.2\.1 <recip@target\.example\.com>: Recipient address\r\n rejected: mailbox temporarily disabled, try again later\r\n/);
    assert.doesNotMatch(dsn.bytes.toString(), /\b551 /, 'no made-up reply');
    assert.ok(dsn.bytes.toString().split('\r\n').every((l) => l.length <= 78), 'no line over 78 characters');
    const headers = dsn.bytes.toString().split('Content-Type: text/rfc822-headers\r\n\r\n')[1];
    assert.match(headers, /Subject: Hello!/);
    assert.doesNotMatch(headers, /hello there/);
  });

  it('a reply Tern made itself names no Remote-MTA and has a diagnostic type of its own', () => {
    const refused = { code: 451, enhanced: '4.4.1', text: 'cannot connect to mx.target.example.com [42.42.42.42]:25: ECONNREFUSED' };
    for (const kind of ['expiration', 'delay', 'bounce'] as const) {
      const dsn = generateDsn(params, { ...expiration, kind, recipients: [{ ...expiration.recipients[0], reply: refused }] })!;
      const { body } = statusPart(dsn.bytes);
      assert.doesNotMatch(body, /Remote-MTA/, kind);
      assert.doesNotMatch(body, /smtp;/i, kind);
      const unfolded = body.replace(/\r\n(?=[ \t])/g, '');
      const expired = kind === 'expiration' ? 'delivery time expired; last error: ' : '';
      assert.ok(unfolded.includes(`\r\nDiagnostic-Code: X-Tern; ${expired}cannot connect to mx.target.example.com [42.42.42.42]:25: ECONNREFUSED\r\n`), kind);
      assert.doesNotMatch(dsn.bytes.toString(), /While communicating/, kind);
    }
  });

  it('an expiration that no attempt got a reply for says only that it expired', async () => {
    const expiry = { code: 551, enhanced: '5.4.7', text: 'Delivery time expired: message queued at 2003-07-01T08:52:37.000Z was still undelivered after 2.0 h' };
    const dsn = generateDsn(params, { ...expiration, recipients: [{ ...expiration.recipients[0], reply: expiry }] })!;
    assert.match(statusPart(dsn.bytes).body, /\r\nStatus: 5\.4\.7 \(delivery time expired\)\r\nDiagnostic-Code: X-Tern; Delivery time expired: message queued at\r\n 2003-07-01T08:52:37\.000Z was still undelivered after 2\.0 h\r\n/);
    const { mail } = await parsed(dsn.bytes);
    assert.match(mail.text ?? '', /Status: 551 5\.4\.7 Delivery time expired: message queued at 2003-07-01T08:52:37\.000Z was still undelivered after 2\.0 h\nIt had not been delivered by/);
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
        { address: 'other@target.example.com', orcpt: 'rfc822;Other@Target.example.com', reply: { code: 552, enhanced: '5.2.2', text: 'Mailbox (really) full', remote: TARGET }, lastAttempt: last },
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

  it('delay reports say delayed with status 4.4.7; success reports say relayed, or delivered after a final delivery', () => {
    const delay = generateDsn(params, { ...bounce, kind: 'delay', retryUntil: new Date('2003-07-06T08:52:37Z'), recipients: [{ ...bounce.recipients[0], reply: { code: 451, enhanced: '4.2.1', text: 'busy', remote: TARGET } }] })!;
    assert.match(delay.bytes.toString(), /Action: delayed\r\nStatus: 4\.4\.7 \(delivery delayed, still being retried\)\r\nRemote-MTA: dns; target\.example\.com\r\nDiagnostic-Code: smtp; 451 4\.2\.1 busy\r\n/);
    assert.match(delay.bytes.toString(), /Will-Retry-Until: Sun, 6 Jul 2003 08:52:37 \+0000/);
    assert.match(delay.bytes.toString(), /Subject: Delayed mail/);
    const ok: DsnEvent = { ...bounce, kind: 'success', recipients: [{ ...bounce.recipients[0], notify: ['SUCCESS'], reply: { code: 250, enhanced: '2.0.0', text: 'ok', remote: TARGET } }] };
    const relayed = generateDsn(params, ok)!.bytes.toString();
    assert.match(relayed, /Action: relayed\r\nStatus: 2\.0\.0 \(ok\)/, 'RFC 3461 §5.2.2: to a next hop without DSN');
    assert.match(relayed, /It was relayed to target\.example\.com \(42\.42\.42\.42\)/);
    const delivered = generateDsn(params, { ...ok, finalDelivery: true })!.bytes.toString();
    assert.match(delivered, /Action: delivered\r\nStatus: 2\.0\.0 \(ok\)/);
  });

  it('folds long fields within 78 characters and 998 octets, never encoding the status part', () => {
    const local = 'a'.repeat(60);
    const text = `<${local}@target.example.com>: Recipient address rejected: ${'word '.repeat(150)}${'x'.repeat(1200)} end`;
    const dsn = generateDsn(params, { ...bounce, recipients: [{ address: `${local}@target.example.com`, orcpt: `rfc822;${local}@target.example.com`, reply: { code: 550, enhanced: '5.1.1', text, remote: TARGET }, lastAttempt: last }] })!;
    const { head, body } = statusPart(dsn.bytes);
    assert.equal(head, 'Content-Type: message/delivery-status\r\n');
    const lines = body.split('\r\n');
    assert.ok(lines.every((l) => Buffer.byteLength(l) <= 998), 'no line over 998 octets');
    const long = lines.filter((l) => l.length > 78 && / /.test(l.trim()) && !/^(Final|Original)-Recipient: /.test(l));
    assert.deepEqual(long, [], 'folded at white space before 78');
    assert.ok(lines.includes(`Final-Recipient: rfc822;${local}@target.example.com`), 'an address is never folded');
    const unfolded = body.replace(/\r\n(?=[ \t])/g, '');
    const diag = unfolded.split('\r\n').find((l) => l.startsWith('Diagnostic-Code: '))!;
    // A word too long for any line is cut; unfolding then shows the cuts as spaces (RFC 5322 §2.2.3).
    assert.equal(diag.replace(/x{10,}( x+)*/, '<x>'), `Diagnostic-Code: smtp; 550 5.1.1 <${local}@target.example.com>: Recipient address rejected: ${'word '.repeat(150)}<x> end`);
    assert.equal(diag.match(/x{10,}( x+)*/)![0].replace(/ /g, '').length, 1200, 'every character of a long word is kept');
  });

  it('writes UTF-8 addresses with the utf-8 type and UTF-8 reply text in message/global-delivery-status (RFC 6533)', () => {
    const utf8: DsnEvent = {
      ...bounce,
      smtpUtf8: true,
      recipients: [{ address: '\u7528\u6237@target.example.com', orcpt: 'utf-8;\u7528\u6237@Target.example.com', reply: { code: 550, enhanced: '5.1.1', text: 'Benutzer unbekannt: \u00fcberpr\u00fcfen', remote: TARGET }, lastAttempt: last }],
    };
    const dsn = generateDsn(params, utf8)!;
    const { head, body } = statusPart(dsn.bytes);
    assert.equal(head, 'Content-Type: message/global-delivery-status\r\nContent-Transfer-Encoding: 8bit\r\n');
    assert.match(body, /\r\nOriginal-Recipient: utf-8;\u7528\u6237@Target\.example\.com\r\nFinal-Recipient: utf-8;\u7528\u6237@target\.example\.com\r\n/);
    assert.match(body, /Diagnostic-Code: smtp; 550 5\.1\.1 Benutzer unbekannt: \u00fcberpr\u00fcfen\r\n/);
    assert.equal(dsn.smtpUtf8, true);

    // An ASCII message whose remote answered in UTF-8: 8BITMIME is enough, SMTPUTF8 is not needed.
    const ascii = generateDsn(params, { ...bounce, recipients: [{ ...bounce.recipients[0], reply: { code: 550, enhanced: '5.7.1', text: 'r\u00e9fus\u00e9', remote: TARGET } }] })!;
    assert.match(statusPart(ascii.bytes).head, /^Content-Type: message\/global-delivery-status\r\n/);
    assert.match(ascii.bytes.toString(), /Diagnostic-Code: smtp; 550 5\.7\.1 r\u00e9fus\u00e9\r\n/);
    assert.equal(ascii.eightBit, true);
    assert.equal(ascii.smtpUtf8, false);
    assert.equal(generateDsn(params, bounce)!.eightBit, false, 'the ASCII case stays 7bit');
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
