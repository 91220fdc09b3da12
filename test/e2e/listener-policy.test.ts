import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { World } from '../helpers/world.js';
import { RawSmtp, message, sendMail } from '../helpers/smtp-client.js';
import type { TernProcess } from '../helpers/tern-process.js';
import { hashPassword } from '../../src/listener/index.js';

describe('who may relay, and what the listener refuses', () => {
  let world: World;
  let tern: TernProcess;

  before(async () => {
    world = await new World().start();
    tern = await world.tern({
      smtp: 'max_recipients=3\nmax_message_size=64k\nmax_received_headers=5',
      files: {
        relay_acl_allow: '127.0.0.1/32\n',
        auth_users: `app:${await hashPassword('s3cret pass')}\n`,
        'tls_key.pem': world.cert.key,
        'tls_cert.pem': world.cert.cert,
      },
    });
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
  });

  it('advertises the extensions an application relies on', async () => {
    const smtp = await RawSmtp.open(tern.port);
    const ehlo = await smtp.command('EHLO client.test');
    for (const ext of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'DSN', 'STARTTLS', 'SIZE 65536']) {
      assert.match(ehlo, new RegExp(`^250[- ]${ext}$`, 'm'), ext);
    }
    assert.doesNotMatch(ehlo, /AUTH/, 'no AUTH before STARTTLS');
    smtp.close();
  });

  it('refuses to relay for an address outside relay_acl_allow (550 5.7.1 at RCPT)', async () => {
    const smtp = await RawSmtp.open(tern.port, '127.0.0.1', '127.0.0.9');
    await smtp.command('EHLO outsider.test');
    assert.match(await smtp.command('MAIL FROM:<spammer@outsider.test>'), /^250/);
    assert.match(await smtp.command('RCPT TO:<victim@good.test>'), /^550 5\.7\.1 /);
    smtp.close();
  });

  it('relays for an authenticated client over STARTTLS', async () => {
    const res = await sendMail({
      port: tern.port,
      localAddress: '127.0.0.9',
      requireTLS: true,
      auth: { user: 'app', pass: 's3cret pass' },
      from: 'app@client.test',
      to: ['authed@good.test'],
      body: message('auth'),
    });
    assert.match(res.response, /^250 2\.0\.0 Queued as/);
    const reception = await tern.waitFor((r) => r.type === 'Reception' && (r.recipients as string[]).includes('authed@good.test'));
    assert.deepEqual(reception.client, { address: '127.0.0.9', helo: 'client.test', user: 'app', tls: true });
    await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === 'authed@good.test');
    const mail = world.mx.mailbox.find((m) => m.to.includes('authed@good.test'))!;
    assert.match(mail.body.toString(), /with ESMTPSA id/);
  });

  it('refuses a wrong password with 535 5.7.8', async () => {
    await assert.rejects(
      sendMail({ port: tern.port, localAddress: '127.0.0.9', requireTLS: true, auth: { user: 'app', pass: 'wrong' }, from: 'a@client.test', to: ['x@good.test'], body: message('badauth') }),
      (err: Error & { response?: string }) => /^535 5\.7\.8/.test(err.response ?? ''),
    );
  });

  it('refuses a bare LF in DATA and does not split the message (SMTP smuggling)', async () => {
    const smtp = await RawSmtp.open(tern.port);
    await smtp.command('EHLO client.test');
    await smtp.command('MAIL FROM:<a@client.test>');
    await smtp.command('RCPT TO:<smuggle@good.test>');
    assert.match(await smtp.command('DATA'), /^354/);
    smtp.send('Subject: smuggle\r\n\r\nfirst\n.\nMAIL FROM:<evil@client.test>\r\nRCPT TO:<hidden@good.test>\r\nDATA\r\nhidden\r\n.\r\n');
    const reply = await smtp.reply();
    assert.match(reply, /^554 5\.6\.0 .*bare LF/);
    assert.match(await smtp.command('NOOP'), /^250/, 'the session goes on: nothing was taken as a command');
    smtp.close();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(tern.dispositions('Reception').filter((r) => (r.recipients as string[]).some((x) => /smuggle|hidden/.test(x))).length, 0);
  });

  it('refuses a bare CR in DATA, a bare LF or CR in a command, and unknown parameters', async () => {
    const smtp = await RawSmtp.open(tern.port);
    await smtp.command('EHLO client.test');
    assert.match(await smtp.command('MAIL FROM:<a@client.test> XFOO=1'), /^555 5\.5\.4 /);
    assert.match(await smtp.command('MAIL FROM:<a@client.test>\rRCPT TO:<b@good.test>'), /^500 5\.5\.2 /);
    await smtp.command('MAIL FROM:<a@client.test>');
    assert.match(await smtp.command('RCPT TO:<b@good.test> FOO=BAR'), /^555 5\.5\.4 /);
    await smtp.command('RCPT TO:<b@good.test>');
    await smtp.command('DATA');
    smtp.send('Subject: cr\r\n\r\nbad\rline\r\n.\r\n');
    assert.match(await smtp.reply(), /^554 5\.6\.0 .*bare CR/);
    smtp.send('NOOP\n');
    assert.match(await smtp.reply(), /^521 5\.5\.2 .*Bare LF/);
    assert.equal(await smtp.reply(), '', 'the connection is closed');
    smtp.close();
  });

  it('enforces max_message_size (552 5.3.4), max_recipients (452 4.5.3) and the hop limit (554 5.4.6)', async () => {
    const smtp = await RawSmtp.open(tern.port);
    await smtp.command('EHLO client.test');
    await smtp.command('MAIL FROM:<a@client.test>');
    for (const n of [1, 2, 3]) assert.match(await smtp.command(`RCPT TO:<r${n}@good.test>`), /^250/);
    assert.match(await smtp.command('RCPT TO:<r4@good.test>'), /^452 4\.5\.3 /);
    await smtp.command('DATA');
    smtp.send(`Subject: big\r\n\r\n${'x'.repeat(998)}\r\n`.repeat(80) + '.\r\n');
    assert.match(await smtp.reply(), /^552 5\.3\.4 /);
    await smtp.command('MAIL FROM:<a@client.test>');
    await smtp.command('RCPT TO:<loop@good.test>');
    await smtp.command('DATA');
    smtp.send('Received: from a\r\n'.repeat(6) + 'Subject: loop\r\n\r\nbody\r\n.\r\n');
    assert.match(await smtp.reply(), /^554 5\.4\.6 /);
    smtp.close();
  });

  it('refuses MAIL with a SIZE above the limit before any data', async () => {
    const smtp = await RawSmtp.open(tern.port);
    await smtp.command('EHLO client.test');
    assert.match(await smtp.command('MAIL FROM:<a@client.test> SIZE=1000000'), /^552 5\.3\.4 /);
    smtp.close();
  });
});
