import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { World } from '../helpers/world.js';
import { TestPostfix } from '../helpers/postfix.js';
import { requireRoot } from '../helpers/root.js';
import { RawSmtp, message, sendMail } from '../helpers/smtp-client.js';
import { is } from '../helpers/tern-process.js';
import type { TernProcess } from '../helpers/tern-process.js';
import { makeDkimKey, publishDkimKey, verifyDkim } from '../helpers/dkim.js';

function bodyOf(raw: Buffer): Buffer {
  return raw.subarray(raw.indexOf('\r\n\r\n') === -1 ? raw.indexOf('\n\n') + 2 : raw.indexOf('\r\n\r\n') + 4);
}

const crlf = (b: Buffer) => Buffer.from(b.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');

describe('interoperability: Tern delivering to a real Postfix', () => {
  let world: World;
  let tern: TernProcess;
  const postfix = new TestPostfix('pf.test', 2526);

  before(async () => {
    requireRoot('Delivering to a real Postfix');
    await postfix.start();
    world = await new World({ tls: '127.0.0.102', dead: '127.0.0.103', plain: '127.0.0.104' }).start();
    tern = await world.tern({
      smtp: 'max_message_size=40M',
      files: {
        'routes.ini': '[pf.test]\nhost=127.0.0.1\nport=2526\ntls=verify\n',
        'tls.ini': '[outbound]\nca=postfix-ca.pem\n',
        'postfix-ca.pem': postfix.cert.cert,
      },
    });
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
    postfix.stop();
  });

  it('arrives over verified TLS, intact: headers, 8-bit body, dot-stuffed lines, a 10 MB attachment', async () => {
    const attachment = randomBytes(10 * 1024 * 1024).toString('base64').replace(/.{76}/g, '$&\r\n');
    const body = Buffer.concat([
      Buffer.from(
        [
          'From: Jörg <app@client.test>',
          'To: inbox@pf.test',
          'Subject: interop with Postfix',
          'Message-ID: <interop@client.test>',
          'MIME-Version: 1.0',
          'Content-Type: multipart/mixed; boundary="b1"',
          '',
          '--b1',
          'Content-Type: text/plain; charset=utf-8',
          'Content-Transfer-Encoding: 8bit',
          '',
          'Grüße aus Tern — déjà vu.',
          '.',
          '..two dots',
          '.leading dot',
          '',
          '--b1',
          'Content-Type: application/octet-stream; name="big.bin"',
          'Content-Transfer-Encoding: base64',
          '',
          '',
        ].join('\r\n'),
        'utf8',
      ),
      Buffer.from(attachment + '\r\n--b1--\r\n'),
    ]);
    const res = await sendMail({ port: tern.port, from: 'app@client.test', to: ['inbox@pf.test'], body, eightBit: true });
    assert.match(res.response, /^250 /);
    const d = await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === 'inbox@pf.test', 60000);
    assert.equal(d.tls, true);
    assert.match(String(d.tls_version), /^TLSv1\.[23]$/);
    const [raw] = await postfix.waitFor(1, 60000);
    const text = raw.toString('utf8');
    assert.match(text, /^Received: from tern\.test \(.*\)\n\s+\(using TLSv1\.[23] with cipher /m, 'Postfix saw TLS');
    assert.match(text, /by mx\.pf\.test \(Postfix\) with ESMTPS/);
    assert.match(text, /^Received: from client\.test \(\[127\.0\.0\.1\]\)\n\s+by tern\.test \(Tern outbound\)/m);
    assert.match(text, /^Subject: interop with Postfix$/m);
    assert.match(text, /^From: Jörg <app@client\.test>$/m, '8-bit header intact');
    // Postfix's Maildir has LF line ends; the content is otherwise byte for byte what was sent.
    assert.ok(crlf(bodyOf(raw)).equals(bodyOf(body)), 'body identical, dot-stuffing undone, attachment intact');
  });

  it("passes each recipient's own ORCPT and NOTIFY=SUCCESS; Postfix's own success reports carry each Original-Recipient", async () => {
    // The sender is a mailbox of this Postfix too, so that its reports land in the Maildir.
    const smtp = await RawSmtp.open(tern.port);
    try {
      await smtp.command('EHLO client.test');
      assert.match(await smtp.command('MAIL FROM:<app@pf.test> RET=HDRS ENVID=interop+2Benv'), /^250/);
      assert.match(await smtp.command('RCPT TO:<one@pf.test> NOTIFY=SUCCESS ORCPT=rfc822;first@orig.test'), /^250/);
      assert.match(await smtp.command('RCPT TO:<two@pf.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;second+2Bx@orig.test'), /^250/);
      assert.match(await smtp.command('DATA'), /^354/);
      assert.match(await smtp.command(`${message('orcpt')}.`), /^250/);
    } finally {
      smtp.close();
    }
    await tern.waitFor(is('Delivery', 'one@pf.test'), 30000);
    await tern.waitFor(is('Delivery', 'two@pf.test'), 30000);
    // Postfix's reports (Reporting-MTA mx.pf.test), not Tern's own: one block per recipient.
    const deadline = Date.now() + 30000;
    let blocks: string[] = [];
    while (Date.now() < deadline) {
      const reports = postfix.messages().map((m) => m.toString('utf8')).filter((t) => /^Reporting-MTA: dns; ?mx\.pf\.test$/m.test(t));
      blocks = reports.flatMap((t) => t.split(/\n\n/).filter((b) => /^Final-Recipient:/m.test(b)));
      if (blocks.length >= 2) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const block = (rcpt: string) => blocks.find((b) => new RegExp(`^Final-Recipient: rfc822; ?${rcpt.replace('.', '\\.')}$`, 'm').test(b)) ?? '';
    assert.match(block('one@pf.test'), /^Original-Recipient: rfc822; ?first@orig\.test$/m);
    assert.match(block('one@pf.test'), /^Action: delivered$/m);
    assert.match(block('two@pf.test'), /^Original-Recipient: rfc822; ?second\+x@orig\.test$/m);
    assert.match(block('two@pf.test'), /^Action: delivered$/m);
  });

  it('a message Tern signed (RSA and Ed25519) arrives in the Postfix mailbox with both signatures verifying (dkimpy)', { timeout: 120000 }, async () => {
    const signing = await new World({ tls: '127.0.0.208', dead: '127.0.0.209', plain: '127.0.0.210' }).start();
    const rsa = makeDkimKey('rsa-sha256');
    const ed = makeDkimKey('ed25519-sha256');
    publishDkimKey(signing.dns, 'client.test', 'pf-rsa', rsa);
    publishDkimKey(signing.dns, 'client.test', 'pf-ed', ed);
    const signer = await signing.tern({
      files: {
        'routes.ini': '[pf.test]\nhost=127.0.0.1\nport=2526\ntls=verify\n',
        'tls.ini': '[outbound]\nca=postfix-ca.pem\n',
        'postfix-ca.pem': postfix.cert.cert,
        'rsa.pem': rsa,
        'ed.pem': ed,
        'dkim.ini': '[client.test]\nselector=pf-rsa\nkey=rsa.pem\n[client.test/ed]\nselector=pf-ed\nkey=ed.pem\nalgorithm=ed25519-sha256\n',
      },
    });
    try {
      const body = Buffer.from(
        [
          'From: Jörg <app@client.test>',
          'To: inbox@pf.test',
          'Subject: signed through Postfix',
          'Date: Tue, 01 Dec 2026 10:00:00 +0000',
          'Message-ID: <dkim-interop@client.test>',
          'MIME-Version: 1.0',
          'Content-Type: text/plain; charset=utf-8',
          'Content-Transfer-Encoding: 8bit',
          '',
          'Grüße — signed by Tern.',
          '.leading dot',
          '..two dots',
          randomBytes(30000).toString('base64').replace(/.{76}/g, '$&\r\n'),
          '',
        ].join('\r\n'),
        'utf8',
      );
      await sendMail({ port: signer.port, from: 'app@client.test', to: ['inbox@pf.test'], body, eightBit: true });
      await signer.waitFor((r) => r.type === 'Delivery' && r.recipient === 'inbox@pf.test', 60000);
      const deadline = Date.now() + 30000;
      let raw: Buffer | undefined;
      while (!raw && Date.now() < deadline) {
        raw = postfix.messages().find((m) => m.includes('<dkim-interop@client.test>'));
        if (!raw) await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(raw, 'the message reached the Maildir');
      // The Maildir stores lines with LF; on the wire (and for the verifier) they are CRLF.
      const verdicts = await verifyDkim(crlf(raw), signing.dns);
      assert.deepEqual(verdicts.map((v) => [v.d, v.s, v.a, v.ok]).sort(), [
        ['client.test', 'pf-ed', 'ed25519-sha256', true],
        ['client.test', 'pf-rsa', 'rsa-sha256', true],
      ], JSON.stringify(verdicts));
    } finally {
      await signer.stop();
      await signing.stop();
    }
  });
});
