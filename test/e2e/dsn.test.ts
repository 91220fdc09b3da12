import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { simpleParser } from 'mailparser';
import { World } from '../helpers/world.js';
import { message, RawSmtp, sendMail } from '../helpers/smtp-client.js';
import { mimeTypes } from '../helpers/mime.js';
import type { LogRecord, TernProcess } from '../helpers/tern-process.js';
import { TestMx } from '../helpers/mx-server.js';
import type { ReceivedMail } from '../helpers/mx-server.js';

const reportFor = (kind: string, messageId: unknown) => (r: LogRecord) =>
  r.type === 'Reception' && (r.report as { kind?: string } | undefined)?.kind === kind && (r.report as { original_message_id: string }).original_message_id === messageId;

describe('delivery status notifications end to end', () => {
  let world: World;
  let tern: TernProcess;
  // A next hop that advertises neither DSN nor SMTPUTF8: success reports for it are Tern's to send.
  const plainMx = new TestMx('127.0.0.45', 0, { dsn: false, smtpUtf8: false });

  before(async () => {
    world = await new World({ tls: '127.0.0.42', dead: '127.0.0.43', plain: '127.0.0.44' }).start();
    await plainMx.start();
    tern = await world.tern({
      outbound: 'temp_fail_intervals=1s*3',
      files: {
        'dsn.ini': 'enable_bounce=true\nenable_expiration=true\ndelay_warning_time=1s\n',
        'routes.ini': `[nodsn.test]\nhost=127.0.0.45\nport=${plainMx.port}\n`,
      },
    });
  });
  after(async () => {
    await tern?.stop();
    await plainMx.stop();
    await world?.stop();
  });

  /** The report, once delivered to the sender's mailbox (other.test's MX), that speaks of `about`. */
  async function reportMail(receptionId: unknown, about: string): Promise<ReceivedMail> {
    await tern.waitFor((r) => r.type === 'Delivery' && r.message_id === receptionId);
    const found = world.mx2.mailbox.filter((m) => m.from === '' && m.body.includes(`rfc822;${about}`)).at(-1);
    assert.ok(found, `a report about ${about} arrived`);
    return found;
  }

  it('sends a bounce to the sender after a 5xx, from the null sender, as a multipart/report', async () => {
    await sendMail({ port: tern.port, from: 'app@other.test', to: ['permfail-dsn@good.test', 'ok-dsn@good.test'], body: message('dsn-bounce', 'original body') });
    const bounce = await tern.waitFor((r) => r.type === 'Bounce' && r.recipient === 'permfail-dsn@good.test');
    const reception = await tern.waitFor(reportFor('bounce', bounce.message_id));
    assert.deepEqual((reception.report as { recipients: string[] }).recipients, ['permfail-dsn@good.test']);
    assert.equal((reception.report as { original_id: string }).original_id, bounce.id);
    assert.equal(reception.sender, '');
    const mail = await reportMail(reception.id, 'permfail-dsn@good.test');
    assert.equal(mail.from, '');
    assert.deepEqual(mail.to, ['app@other.test']);
    assert.deepEqual(await mimeTypes(mail.body), ['multipart/report', 'text/plain', 'message/delivery-status', 'message/rfc822']);
    const parsed = await simpleParser(mail.body);
    assert.equal(parsed.subject, 'Returned mail');
    assert.match(parsed.text ?? '', /addressed to permfail-dsn@good\.test\.\n/);
    assert.match(parsed.text ?? '', /550 5\.1\.1 No such user here/);
    assert.match(mail.body.toString(), /Final-Recipient: rfc822;permfail-dsn@good\.test\r\nAction: failed\r\nStatus: 5\.1\.1/);
    assert.match(mail.body.toString(), /\r\nContent-Type: message\/delivery-status\r\n\r\n/, '7bit, no charset');
    // The remote's own reply, attributed to it (RFC 3464 §2.3.5, §2.3.6).
    assert.match(mail.body.toString(), /\r\nRemote-MTA: dns; mx\.good\.test\r\nDiagnostic-Code: smtp; 550 5\.1\.1 No such user here\r\n/);
    assert.doesNotMatch(mail.body.toString(), /Final-Recipient: rfc822;ok-dsn@good\.test/, 'only the failed recipient');
    assert.match(mail.body.toString(), /original body/);
  });

  it('never sends a report to the null sender, nor when NOTIFY=NEVER', async () => {
    await sendMail({ port: tern.port, from: '', to: ['permfail-null@good.test'], body: message('dsn-null') });
    const b1 = await tern.waitFor((r) => r.type === 'Bounce' && r.recipient === 'permfail-null@good.test');
    await sendMail({ port: tern.port, from: 'app@other.test', to: ['permfail-never@good.test'], body: message('dsn-never'), dsn: { notify: 'NEVER' } });
    const b2 = await tern.waitFor((r) => r.type === 'Bounce' && r.recipient === 'permfail-never@good.test');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(tern.records.filter(reportFor('bounce', b1.message_id)).length, 0);
    assert.equal(tern.records.filter(reportFor('bounce', b2.message_id)).length, 0);
  });

  it('passes RET, ENVID and NOTIFY on to a DSN-capable next hop', async () => {
    await sendMail({ port: tern.port, from: 'app@other.test', to: ['dsn-success@good.test'], body: message('dsn-success', 'secret body'), dsn: { notify: ['SUCCESS', 'FAILURE'], ret: 'HDRS', envid: 'ENV-42' } });
    await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === 'dsn-success@good.test');
    const relayed = world.mx.mailbox.find((m) => m.to.includes('dsn-success@good.test'))!;
    assert.deepEqual(relayed.envelopeDsn, { ret: 'HDRS', envid: 'ENV-42' });
    assert.deepEqual(relayed.rcptDsn['dsn-success@good.test']?.notify, ['SUCCESS', 'FAILURE']);
    // RFC 3461 §5.2.2: the next hop took NOTIFY on and reports; Tern sends no second report.
    const d = await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === 'dsn-success@good.test');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(tern.records.filter(reportFor('success', d.message_id)).length, 0);
  });

  it('reports NOTIFY=SUCCESS as relayed after a next hop without DSN, honouring RET=HDRS', async () => {
    await sendMail({ port: tern.port, from: 'app@other.test', to: ['dsn-relayed@nodsn.test'], body: message('dsn-relayed', 'secret body'), dsn: { notify: ['SUCCESS', 'FAILURE'], ret: 'HDRS', envid: 'ENV-43' } });
    const d = await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === 'dsn-relayed@nodsn.test');
    const reception = await tern.waitFor(reportFor('success', d.message_id));
    const mail = await reportMail(reception.id, 'dsn-relayed@nodsn.test');
    const text = mail.body.toString();
    // RFC 3461 §5.2.2 and RFC 3464 §2.3.3: relayed, not delivered; no further report will come.
    assert.match(text, /Action: relayed\r\nStatus: 2\.0\.0/);
    assert.match(text, /Original-Envelope-Id: ENV-43/);
    assert.deepEqual(await mimeTypes(mail.body), ['multipart/report', 'text/plain', 'message/delivery-status', 'text/rfc822-headers']);
    assert.doesNotMatch(text, /secret body/);
    assert.equal(plainMx.mailbox.find((m) => m.to.includes('dsn-relayed@nodsn.test'))?.rcptDsn['dsn-relayed@nodsn.test'], undefined, 'no NOTIFY to a server without DSN');
  });

  it('returns a message with a UTF-8 address that the next hop cannot take without SMTPUTF8 (5.6.7)', async () => {
    const smtp = await RawSmtp.open(tern.port);
    assert.match(await smtp.command('EHLO client.test'), /^250/);
    assert.match(await smtp.command('MAIL FROM:<app@other.test> SMTPUTF8'), /^250/);
    assert.match(await smtp.command('RCPT TO:<ünï@nodsn.test>'), /^250/);
    assert.match(await smtp.command('DATA'), /^354/);
    assert.match(await smtp.command(`${message('dsn-utf8')}.`), /^250/);
    smtp.close();
    const bounce = await tern.waitFor((r) => r.type === 'Bounce' && r.recipient === 'ünï@nodsn.test');
    assert.deepEqual([(bounce.response as { code: number }).code, (bounce.response as { enhanced_code: string }).enhanced_code], [553, '5.6.7']);
    const reception = await tern.waitFor(reportFor('bounce', bounce.message_id));
    await tern.waitFor((r) => r.type === 'Delivery' && r.message_id === reception.id);
    const text = world.mx2.mailbox.filter((m) => m.from === '' && m.body.toString().includes('ünï@nodsn.test')).at(-1)!.body.toString();
    // Tern's own verdict: no Remote-MTA, no smtp; Diagnostic-Code (RFC 3464 §2.3.5, §2.3.6).
    assert.match(text, /Final-Recipient: utf-8; ?ünï@nodsn\.test/);
    assert.match(text, /Diagnostic-Code: X-Tern; /);
    assert.doesNotMatch(text, /Remote-MTA:/);
    assert.equal(plainMx.mailbox.filter((m) => m.to.includes('ünï@nodsn.test')).length, 0, 'nothing was sent to it');
  });

  it('warns once of a delay after delay_warning_time, then sends the final bounce', async () => {
    await sendMail({ port: tern.port, from: 'app@other.test', to: ['tempfail-dsn@good.test'], body: message('dsn-delay') });
    const final = await tern.waitFor((r) => r.type === 'Bounce' && r.recipient === 'tempfail-dsn@good.test', 20000);
    const delayed = tern.records.filter(reportFor('delay', final.message_id));
    assert.equal(delayed.length, 1, 'one delay report');
    await tern.waitFor(reportFor('bounce', final.message_id));
    await reportMail(delayed[0].id, 'tempfail-dsn@good.test');
    const delayMail = world.mx2.mailbox.find((m) => m.from === '' && m.body.toString().includes('Action: delayed') && m.body.toString().includes('tempfail-dsn@good.test'))!;
    assert.match(delayMail.body.toString(), /Subject: Delayed mail/);
    assert.match(delayMail.body.toString(), /Will-Retry-Until: /);
  });

  it('sends an expiration report with status 5.4.7', async () => {
    const short = await world.tern({
      outbound: 'temp_fail_intervals=1s*20\nmax_queue_lifetime=2s',
      files: { 'dsn.ini': 'enable_bounce=true\nenable_expiration=true\ninclude_original_message=HeadersOnly\n' },
    });
    try {
      await sendMail({ port: short.port, from: 'app@other.test', to: ['tempfail-exp@good.test'], body: message('dsn-expire') });
      const exp = await short.waitFor((r) => r.type === 'Expiration' && r.recipient === 'tempfail-exp@good.test');
      const reception = await short.waitFor(reportFor('expiration', exp.message_id));
      await short.waitFor((r) => r.type === 'Delivery' && r.message_id === reception.id);
      const mail = world.mx2.mailbox.filter((m) => m.from === '' && m.body.toString().includes('tempfail-exp@good.test')).at(-1)!;
      assert.match(mail.body.toString(), /Action: failed\r\nStatus: 5\.4\.7/);
      // The last reply is quoted as it was (451 4.2.1), never a made-up 551.
      assert.match(mail.body.toString().replace(/\r\n(?=[ \t])/g, ''), /\r\nRemote-MTA: dns; mx\.good\.test\r\nDiagnostic-Code: smtp; 451 4\.2\.1 Mailbox busy, try later\r\n/);
      assert.doesNotMatch(mail.body.toString(), /\b551 5\.4\.7/);
      assert.deepEqual(await mimeTypes(mail.body), ['multipart/report', 'text/plain', 'message/delivery-status', 'text/rfc822-headers']);
    } finally {
      await short.stop();
    }
  });
});
