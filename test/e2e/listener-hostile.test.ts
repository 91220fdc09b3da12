import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { World } from '../helpers/world.js';
import { RawSmtp, message } from '../helpers/smtp-client.js';
import type { TernProcess } from '../helpers/tern-process.js';

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One message through a raw session that has said EHLO; returns the reply to the end of DATA. */
async function relay(smtp: RawSmtp, rcpt: string): Promise<string> {
  assert.match(await smtp.command('MAIL FROM:<app@client.test>'), /^250/);
  assert.match(await smtp.command(`RCPT TO:<${rcpt}>`), /^250/);
  assert.match(await smtp.command('DATA'), /^354/);
  smtp.send(message(rcpt.replace(/\W/g, '')) + '.\r\n');
  return smtp.reply();
}

/** A daemon that only accepts (delivery paused), relaying for 127.0.0.1; with STARTTLS when `tls`. */
function acceptingTern(world: World, smtp = '', tls = false): Promise<TernProcess> {
  const certs: Record<string, string | Buffer> = tls ? { 'tls_key.pem': world.cert.key, 'tls_cert.pem': world.cert.cert } : {};
  return world.tern({ outbound: 'disabled=true', smtp, files: { relay_acl_allow: '127.0.0.1/32\n', ...certs } });
}

describe('every command guard holds in plaintext and inside TLS', () => {
  let world: World;
  let tern: TernProcess;

  before(async () => {
    world = await new World().start();
    tern = await acceptingTern(world, '', true);
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
  });

  for (const mode of ['plaintext', 'TLS'] as const) {
    const session = async (from = '127.0.0.1') => {
      const smtp = await RawSmtp.open(tern.port, '127.0.0.1', from);
      if (mode === 'TLS') assert.match(await smtp.startTls(), /^220/);
      assert.match(await smtp.command('EHLO client.test'), /^250/);
      return smtp;
    };

    it(`${mode}: a bare LF ending a command line gets 521 5.5.2 and the connection is closed`, async () => {
      const smtp = await session();
      smtp.send('MAIL FROM:<a@client.test>\n');
      assert.match(await smtp.reply(), /^521 5\.5\.2 /);
      smtp.send('RCPT TO:<b@good.test>\r\n');
      assert.equal(await smtp.reply(), '', 'nothing after it is answered: the connection is closed');
      smtp.close();
    });

    it(`${mode}: a bare CR or a NUL inside a command line gets 500 5.5.2, and the session goes on`, async () => {
      const smtp = await session();
      assert.match(await smtp.command('MAIL FROM:<a@client.test>\rRCPT TO:<b@good.test>'), /^500 5\.5\.2 /);
      assert.match(await smtp.command('MAIL FROM:<a@client.test>\u0000'), /^500 5\.5\.2 /);
      assert.match(await relay(smtp, `cr-${mode}@good.test`), /^250 2\.0\.0 /);
      smtp.close();
    });

    it(`${mode}: a reply keeps the enhanced code Tern gave it (550 5.7.1 for a relay denial)`, async () => {
      const smtp = await session('127.0.0.9');
      assert.match(await smtp.command('MAIL FROM:<a@outsider.test>'), /^250 2\.1\.0 /);
      assert.match(await smtp.command('RCPT TO:<victim@good.test>'), /^550 5\.7\.1 /);
      smtp.close();
    });

    it(`${mode}: a smuggled message inside DATA is refused whole (554 5.6.0)`, async () => {
      const rcpt = `smuggle-${mode.toLowerCase()}@good.test`;
      const smtp = await session();
      await smtp.command('MAIL FROM:<a@client.test>');
      await smtp.command(`RCPT TO:<${rcpt}>`);
      assert.match(await smtp.command('DATA'), /^354/);
      smtp.send('Subject: smuggle\r\n\r\nfirst\n.\nMAIL FROM:<evil@client.test>\r\nRCPT TO:<hidden@good.test>\r\nDATA\r\nhidden\r\n.\r\n');
      assert.match(await smtp.reply(), /^554 5\.6\.0 /);
      assert.match(await smtp.command('HELP'), /^214/, 'the next reply answers the next command: nothing was taken as a command');
      assert.match(await relay(smtp, `after-smuggle-${mode.toLowerCase()}@good.test`), /^250 2\.0\.0 /);
      smtp.close();
      assert.equal(tern.dispositions('Reception').filter((r) => (r.recipients as string[]).some((x) => x === rcpt || /hidden/.test(x))).length, 0);
    });
  }
});

describe('one host cannot take every slot', () => {
  let world: World;
  let tern: TernProcess;

  before(async () => {
    world = await new World().start();
    tern = await acceptingTern(world, 'max_connections_per_client=3\nmax_connection_rate_per_client=6', true);
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
  });

  it('answers 421 4.7.0 beyond the per-address connection cap, while another address still gets its greeting', async () => {
    const held = await Promise.all([1, 2, 3].map(() => RawSmtp.open(tern.port, '127.0.0.1', '127.0.0.9')));
    const fourth = await RawSmtp.connect(tern.port, '127.0.0.1', '127.0.0.9');
    assert.match(await fourth.reply(), /^421 4\.7\.0 /);
    assert.equal(await fourth.reply(), '', 'and the connection is closed');
    const other = await RawSmtp.connect(tern.port, '127.0.0.1', '127.0.0.5');
    assert.match(await other.reply(), /^220 /);
    assert.match(await other.command('EHLO other.test'), /^250/);
    for (const s of [...held, fourth, other]) s.close();
    await tern.waitFor((r) => r.msg === 'connection refused: per-client limit' && r.client === '127.0.0.9');
  });

  it('answers 421 4.7.0 beyond the per-address connection rate', async () => {
    for (let i = 0; i < 6; i++) {
      const smtp = await RawSmtp.open(tern.port, '127.0.0.1', '127.0.0.10');
      assert.match(await smtp.command('QUIT'), /^221/);
      smtp.close();
    }
    const seventh = await RawSmtp.connect(tern.port, '127.0.0.1', '127.0.0.10');
    assert.match(await seventh.reply(), /^421 4\.7\.0 /);
    seventh.close();
    const other = await RawSmtp.connect(tern.port, '127.0.0.1', '127.0.0.11');
    assert.match(await other.reply(), /^220 /);
    other.close();
  });

  it('gives a slot back when a session ends, inside TLS too', async () => {
    for (let i = 0; i < 2; i++) {
      const smtp = await RawSmtp.open(tern.port, '127.0.0.1', '127.0.0.12');
      assert.match(await smtp.command('EHLO client.test'), /^250/);
      assert.match(await smtp.startTls(), /^220/);
      assert.match(await smtp.command('QUIT'), /^221/);
      assert.equal(await smtp.reply(), '');
    }
    // The server sees the end of a session a moment after the client does.
    await pause(300);
    const sessions = await Promise.all([1, 2, 3].map(() => RawSmtp.connect(tern.port, '127.0.0.1', '127.0.0.12')));
    const greetings = await Promise.all(sessions.map((s) => s.reply()));
    assert.deepEqual(greetings.filter((g) => !g.startsWith('220 ')), [], 'the ended sessions hold no slot');
    for (const s of sessions) s.close();
  });

  it('holds a client in relay_acl_allow to its own limits (none by default): many parallel connections all get 220', async () => {
    const sessions = await Promise.all(Array.from({ length: 15 }, () => RawSmtp.connect(tern.port, '127.0.0.1', '127.0.0.1')));
    const greetings = await Promise.all(sessions.map((s) => s.reply()));
    assert.deepEqual(greetings.filter((g) => !g.startsWith('220 ')), []);
    assert.match(await sessions[0].command('EHLO app.test'), /^250/);
    assert.match(await relay(sessions[0], 'app-server@good.test'), /^250 2\.0\.0 /);
    for (const s of sessions) s.close();
  });
});

describe('deadlines a trickling client cannot stretch, and the early-talker delay', () => {
  let world: World;
  let tern: TernProcess;
  let shortSessions: TernProcess;

  before(async () => {
    world = await new World().start();
    tern = await acceptingTern(world, 'early_talker_delay=1\nline_deadline=1');
    shortSessions = await acceptingTern(world, 'max_session_length=2');
  });
  after(async () => {
    await tern?.stop();
    await shortSessions?.stop();
    await world?.stop();
  });

  it('cuts off a client that sends a command one byte at a time (421 4.4.2), though each byte resets the idle timer', async () => {
    const smtp = await RawSmtp.open(tern.port);
    assert.match(await smtp.command('EHLO client.test'), /^250/);
    const line = 'MAIL FROM:<slow-sender-dripping-one-byte-at-a-time@client.test>';
    let sent = 0;
    while (!smtp.closed && sent < line.length) {
      smtp.send(line[sent++]);
      await pause(200);
    }
    assert.match(await smtp.reply(), /^421 4\.4\.2 /);
    assert.ok(smtp.closed, 'closed before the line was complete');
    assert.ok(sent < line.length);
  });

  it('cuts off a message line dripped one byte at a time inside DATA', async () => {
    const smtp = await RawSmtp.open(tern.port);
    await smtp.command('EHLO client.test');
    await smtp.command('MAIL FROM:<a@client.test>');
    await smtp.command('RCPT TO:<drip@good.test>');
    assert.match(await smtp.command('DATA'), /^354/);
    smtp.send('Subject: drip\r\n\r\n');
    const line = 'x'.repeat(60);
    let sent = 0;
    while (!smtp.closed && sent < line.length) {
      smtp.send(line[sent++]);
      await pause(200);
    }
    assert.match(await smtp.reply(), /^421 4\.4\.2 /);
    assert.ok(smtp.closed);
    await tern.waitFor((r) => r.msg === 'client gone before the end of the message');
    assert.equal(tern.dispositions('Reception').filter((r) => (r.recipients as string[]).includes('drip@good.test')).length, 0);
  });

  it('ends a session at max_session_length, however busy the client keeps it (421 4.4.2)', async () => {
    const smtp = await RawSmtp.open(shortSessions.port);
    let reply = await smtp.command('EHLO client.test');
    let answered = 0;
    while (reply.startsWith('250') && answered < 200) {
      answered++;
      await pause(100);
      reply = await smtp.command('NOOP');
    }
    assert.match(reply, /^421 4\.4\.2 /);
    assert.equal(await smtp.reply(), '', 'and the connection is closed');
    assert.ok(answered > 1, 'the session was in use until then');
  });

  it('refuses a client that talks before the delayed greeting, and greets one that waits', async () => {
    const early = await RawSmtp.connect(tern.port, '127.0.0.1', '127.0.0.9');
    early.send('EHLO early.test\r\n');
    assert.match(await early.reply(), /^421 /);
    assert.equal(await early.reply(), '', 'and the connection is closed');
    early.close();

    const polite = await RawSmtp.open(tern.port, '127.0.0.1', '127.0.0.9');
    assert.match(await polite.command('EHLO polite.test'), /^250/);
    polite.close();
  });

  it('never delays a client in relay_acl_allow: it may talk at once', async () => {
    const app = await RawSmtp.connect(tern.port, '127.0.0.1', '127.0.0.1');
    app.send('EHLO app.test\r\n');
    assert.match(await app.reply(), /^220 /);
    assert.match(await app.reply(), /^250/);
    assert.match(await relay(app, 'eager@good.test'), /^250 2\.0\.0 /);
    app.close();
  });
});

describe('client names come from Tern\'s resolver, in the background', () => {
  let world: World;
  let tern: TernProcess;

  before(async () => {
    world = new World();
    world.dns
      .add('6.0.0.127.in-addr.arpa', { type: 'PTR', data: 'client6.ptr.test' })
      .add('client6.ptr.test', { type: 'A', data: '127.0.0.6' })
      .add('7.0.0.127.in-addr.arpa', { type: 'PTR', data: 'liar.ptr.test' })
      .add('liar.ptr.test', { type: 'A', data: '127.0.0.99' });
    // The reverse zone of 127.0.0.1 is down: its queries are never answered.
    world.dns.silent.add('1.0.0.127.in-addr.arpa');
    await world.start();
    tern = await world.tern({
      files: {
        relay_acl_allow: '127.0.0.0/8\n',
        // Longer than any reply the test waits for: a greeting that waited for DNS would fail the test.
        'dns.ini': `[main]\nservers=127.0.0.1:${world.dns.port}\ntimeout=20\n`,
      },
    });
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
  });

  const ptrAsked = (name: string) => world.dns.queries.some((q) => q.name === name && q.type === 'PTR');

  it('greets and accepts a message while the reverse lookup of the client is still unanswered', async () => {
    const smtp = await RawSmtp.open(tern.port, '127.0.0.1', '127.0.0.1');
    assert.match(await smtp.command('EHLO client.test'), /^250/);
    assert.match(await relay(smtp, 'no-ptr@good.test'), /^250 2\.0\.0 /);
    smtp.close();
    assert.ok(ptrAsked('1.0.0.127.in-addr.arpa'), 'the lookup was made, and is still without an answer');
    const reception = await tern.waitFor((r) => r.type === 'Reception' && (r.recipients as string[]).includes('no-ptr@good.test'));
    assert.equal((reception.client as { name?: string }).name, undefined);
    await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === 'no-ptr@good.test');
    const mail = world.mx.mailbox.find((m) => m.to.includes('no-ptr@good.test'))!;
    assert.match(mail.body.toString(), /^Received: from client\.test \(\[127\.0\.0\.1\]\)/m);
  });

  it('writes the forward-confirmed name into Received and the Reception record', async () => {
    const smtp = await RawSmtp.open(tern.port, '127.0.0.1', '127.0.0.6');
    assert.match(await smtp.command('EHLO client.test'), /^250/);
    // The name is used when known by the time the message arrives; this client waits until
    // the forward lookup that confirms the name has been asked, and a moment for its answer.
    while (!world.dns.queries.some((q) => q.name === 'client6.ptr.test' && q.type === 'A')) await pause(20);
    await pause(300);
    assert.match(await relay(smtp, 'named@good.test'), /^250 2\.0\.0 /);
    smtp.close();
    const reception = await tern.waitFor((r) => r.type === 'Reception' && (r.recipients as string[]).includes('named@good.test'));
    assert.equal((reception.client as { name?: string }).name, 'client6.ptr.test');
    await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === 'named@good.test');
    const mail = world.mx.mailbox.find((m) => m.to.includes('named@good.test'))!;
    assert.match(mail.body.toString(), /^Received: from client\.test \(client6\.ptr\.test \[127\.0\.0\.6\]\)/m);
  });

  it('does not trust a PTR name that does not lead back to the address', async () => {
    const smtp = await RawSmtp.open(tern.port, '127.0.0.1', '127.0.0.7');
    assert.match(await smtp.command('EHLO client.test'), /^250/);
    while (!world.dns.queries.some((q) => q.name === 'liar.ptr.test')) await pause(20);
    await pause(300);
    assert.match(await relay(smtp, 'liar@good.test'), /^250 2\.0\.0 /);
    smtp.close();
    const reception = await tern.waitFor((r) => r.type === 'Reception' && (r.recipients as string[]).includes('liar@good.test'));
    assert.equal((reception.client as { name?: string }).name, undefined);
    await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === 'liar@good.test');
    const mail = world.mx.mailbox.find((m) => m.to.includes('liar@good.test'))!;
    assert.match(mail.body.toString(), /^Received: from client\.test \(\[127\.0\.0\.7\]\)/m);
    assert.doesNotMatch(mail.body.toString(), /liar\.ptr\.test/);
  });
});
