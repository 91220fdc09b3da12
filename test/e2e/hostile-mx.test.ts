import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { World } from '../helpers/world.js';
import { listenOn } from '../helpers/ports.js';
import { RawSmtp, message, sendMail } from '../helpers/smtp-client.js';
import { is } from '../helpers/tern-process.js';
import type { LogRecord, TernProcess } from '../helpers/tern-process.js';

type Response = { code: number; enhanced_code: string; content: string };

/** A peer on host:port that greets, then hands every chunk it reads to `onData` (made per connection). */
function rawServer(host: string, port: number, greeting: string | undefined, onData: (socket: Socket) => (text: string) => void, closed?: () => void): Promise<Server> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    if (closed) socket.on('close', closed);
    if (greeting) socket.write(greeting);
    const handler = onData(socket);
    socket.on('data', (d) => handler(d.toString('utf8')));
  });
  return listenOn(server, host, port).then(() => server);
}

/**
 * Answers EHLO with `ehlo`, DATA with 354 and the message with `final`; a command that
 * `special` does not answer (it returns false) gets a 250.
 */
function answering(ehlo: (socket: Socket) => void, final = '250 2.0.0 ok\r\n', special: (line: string, socket: Socket) => boolean = () => false) {
  return (socket: Socket) => {
    let inData = false;
    let buf = '';
    return (text: string) => {
      buf += text;
      let i;
      while ((i = buf.indexOf('\r\n')) !== -1) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            socket.write(final);
          }
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') ehlo(socket);
        else if (verb === 'DATA') {
          inData = true;
          socket.write('354 go\r\n');
        } else if (verb === 'QUIT') socket.end('221 bye\r\n');
        else if (!special(line, socket)) socket.write('250 2.1.0 ok\r\n');
      }
    };
  };
}

describe('hostile mail exchangers cannot stall Tern', () => {
  let world: World;
  let tern: TernProcess;
  const servers: Server[] = [];
  const flood = { closed: 0, bytes: 0 };
  const drip: NodeJS.Timeout[] = [];

  before(async () => {
    world = new World({ tls: '127.0.0.162', dead: '127.0.0.163', plain: '127.0.0.164' });
    const mx = (domain: string, address: string) => world.dns.add(domain, { type: 'MX', preference: 10, exchange: `mx.${domain}` }).add(`mx.${domain}`, { type: 'A', data: address });
    mx('huge-ehlo.test', '127.0.0.165');
    mx('flood.test', '127.0.0.166');
    mx('drip.test', '127.0.0.167');
    mx('utf8.test', '127.0.0.168');
    await world.start();
    // EHLO answered with 100,000 lines (1.4 MB), all at once.
    const huge = Buffer.from(Array.from({ length: 99999 }, (_, i) => `250-EXTENSION-NUMBER-${i}\r\n`).join('') + '250 end\r\n');
    servers.push(await rawServer('127.0.0.165', world.port, '220 huge ESMTP\r\n', answering((s) => s.write(huge))));
    // EHLO answered with `250-` lines that never end, written as fast as the socket takes them.
    servers.push(
      await rawServer(
        '127.0.0.166',
        world.port,
        '220 flood ESMTP\r\n',
        answering((s) => {
          const chunk = Buffer.from('250-flood flood flood flood flood flood flood flood\r\n'.repeat(1000));
          const pump = () => {
            while (!s.destroyed && s.write(chunk)) flood.bytes += chunk.length;
            if (!s.destroyed) s.once('drain', pump);
          };
          pump();
        }),
        () => flood.closed++,
      ),
    );
    // Greets, then answers EHLO one byte a second with a reply that never ends.
    servers.push(
      await rawServer(
        '127.0.0.167',
        world.port,
        '220 drip ESMTP\r\n',
        answering((s) => {
          const bytes = Buffer.from('250-drip\r\n');
          let n = 0;
          const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write(bytes.subarray(n % bytes.length, (n++ % bytes.length) + 1))), 1000);
          drip.push(t);
        }),
      ),
    );
    // Refuses one recipient with UTF-8 text, defers another.
    servers.push(
      await rawServer(
        '127.0.0.168',
        world.port,
        '220 utf8 ESMTP\r\n',
        answering(
          (socket) => socket.write('250-utf8.test grüßt\r\n250 SMTPUTF8\r\n'),
          undefined,
          (line, socket) => {
            if (/^RCPT TO:<reject/i.test(line)) socket.write('550-5.1.1 <reject-ünï@utf8.test>: Recipient address rejected:\r\n550 5.1.1 ünknown üser\r\n');
            else if (/^RCPT TO:<later/i.test(line)) socket.write('450 4.2.1 Пожалуйста, попробуйте позже\r\n');
            else return false;
            return true;
          },
        ),
      ),
    );
    tern = await world.tern({ outbound: 'temp_fail_intervals=1h\ngreeting_timeout=3\nmail_timeout=3\nrcpt_timeout=3\ndata_init_timeout=3\ndata_block_timeout=3\ndata_done_timeout=3' });
  });
  after(async () => {
    for (const t of drip) clearInterval(t);
    await tern?.stop();
    for (const s of servers) s.close();
    await world?.stop();
  });

  const response = (r: LogRecord) => r.response as Response;

  it('defers with 451 4.5.0 when EHLO is answered with 100,000 lines, and logs the protocol error', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['x@huge-ehlo.test'], body: message('huge') });
    const tf = await tern.waitFor(is('TransientFailure', 'x@huge-ehlo.test'));
    assert.equal(response(tf).code, 451);
    assert.equal(response(tf).enhanced_code, '4.5.0');
    const warn = tern.records.find((r) => r.msg === 'mail exchanger broke the SMTP protocol; session ended');
    assert.equal((warn?.peer as { address: string }).address, '127.0.0.165');
  });

  it('defers an endless 250- flood as a protocol error, and delivers to a good MX meanwhile', async () => {
    await Promise.all([
      sendMail({ port: tern.port, from: 'a@client.test', to: ['x@flood.test'], body: message('flood') }),
      sendMail({ port: tern.port, from: 'a@client.test', to: ['y@other.test'], body: message('meanwhile') }),
    ]);
    const tf = await tern.waitFor(is('TransientFailure', 'x@flood.test'));
    assert.equal(response(tf).enhanced_code, '4.5.0');
    await tern.waitFor(is('Delivery', 'y@other.test'));
    assert.ok(world.mx2.recipients().includes('y@other.test'));
    assert.ok(flood.closed >= 1, 'Tern closed the flooding connection');
    const health = await fetch(`${tern.api}/health`);
    assert.equal(health.status, 200);
  });

  it('defers, by the phase timeout, a server that drips a reply one byte a second', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['x@drip.test'], body: message('drip') });
    const tf = await tern.waitFor(is('TransientFailure', 'x@drip.test'), 20000);
    assert.equal(response(tf).code, 451);
    assert.equal(response(tf).enhanced_code, '4.4.2');
    assert.match(response(tf).content, /command phase/);
  });

  it('keeps UTF-8 reply text intact in Bounce and TransientFailure records', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['reject@utf8.test', 'later@utf8.test', 'fine@utf8.test'], body: message('utf8') });
    const bounce = await tern.waitFor(is('Bounce', 'reject@utf8.test'));
    assert.deepEqual(bounce.response, { code: 550, enhanced_code: '5.1.1', content: '<reject-ünï@utf8.test>: Recipient address rejected: ünknown üser' });
    const tf = await tern.waitFor(is('TransientFailure', 'later@utf8.test'));
    assert.deepEqual(tf.response, { code: 450, enhanced_code: '4.2.1', content: 'Пожалуйста, попробуйте позже' });
    await tern.waitFor(is('Delivery', 'fine@utf8.test'));
  });
});

describe('per-recipient DSN parameters and PIPELINING on the wire', () => {
  let world: World;
  let tern: TernProcess;
  const servers: Server[] = [];
  /** What each server read, chunk by chunk (one entry per TCP read). */
  const reads: Record<string, string[]> = { pipelining: [], plain: [] };
  const order: string[] = [];

  before(async () => {
    world = new World({ tls: '127.0.0.172', dead: '127.0.0.173', plain: '127.0.0.174' });
    const mx = (domain: string, address: string) => world.dns.add(domain, { type: 'MX', preference: 10, exchange: `mx.${domain}` }).add(`mx.${domain}`, { type: 'A', data: address });
    mx('pipe.test', '127.0.0.175');
    mx('nopipe.test', '127.0.0.176');
    await world.start();
    servers.push(await rawServer('127.0.0.175', world.port, '220 pipe ESMTP\r\n', (socket) => {
      const handle = answering((s) => s.write('250-pipe.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n'))(socket);
      return (text) => {
        reads.pipelining.push(text);
        handle(text);
      };
    }));
    // Without PIPELINING: answers MAIL only after 200 ms, noting whether anything came before its reply.
    servers.push(await rawServer('127.0.0.176', world.port, '220 nopipe ESMTP\r\n', (socket) => {
      const handle = answering((s) => s.write('250-nopipe.test\r\n250 8BITMIME\r\n'))(socket);
      let held = '';
      let holding = false;
      return (text) => {
        reads.plain.push(text);
        if (holding) {
          order.push(`early:${text.trim()}`);
          held += text;
          return;
        }
        if (/^MAIL/im.test(text)) {
          holding = true;
          held = text;
          setTimeout(() => {
            holding = false;
            order.push('mail-answered');
            handle(held);
          }, 200);
          return;
        }
        handle(text);
      };
    }));
    tern = await world.tern({ outbound: 'temp_fail_intervals=1h' });
  });
  after(async () => {
    await tern?.stop();
    for (const s of servers) s.close();
    await world?.stop();
  });

  it('gives two recipients their own NOTIFY and ORCPT on the wire', async () => {
    const smtp = await RawSmtp.open(tern.port);
    try {
      await smtp.command('EHLO client.test');
      assert.match(await smtp.command('MAIL FROM:<app@client.test> RET=HDRS ENVID=env+2B1'), /^250/);
      assert.match(await smtp.command('RCPT TO:<one@good.test> NOTIFY=SUCCESS ORCPT=rfc822;first+2Bone@orig.test'), /^250/);
      assert.match(await smtp.command('RCPT TO:<two@good.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;second@orig.test'), /^250/);
      assert.match(await smtp.command('RCPT TO:<three@good.test>'), /^250/);
      assert.match(await smtp.command('DATA'), /^354/);
      assert.match(await smtp.command(`${message('dsn')}.`), /^250/);
    } finally {
      smtp.close();
    }
    const [mail] = await world.mx.waitForMail(1);
    assert.deepEqual(mail.to, ['one@good.test', 'two@good.test', 'three@good.test']);
    assert.deepEqual(mail.rcptDsn['one@good.test'], { notify: ['SUCCESS'], orcpt: 'rfc822;first+one@orig.test' });
    assert.deepEqual(mail.rcptDsn['two@good.test'], { notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;second@orig.test' });
    assert.deepEqual(mail.rcptDsn['three@good.test'] ?? {}, {});
    assert.deepEqual(mail.envelopeDsn, { ret: 'HDRS', envid: 'env+1' });
  });

  it('sends MAIL, every RCPT and DATA in one write when the server offers PIPELINING', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['p1@pipe.test', 'p2@pipe.test'], body: message('pipe') });
    await tern.waitFor(is('Delivery', 'p2@pipe.test'));
    const group = reads.pipelining.find((r) => /^MAIL FROM/m.test(r));
    assert.match(group ?? '', /^MAIL FROM:<a@client\.test>\r\nRCPT TO:<p1@pipe\.test>\r\nRCPT TO:<p2@pipe\.test>\r\nDATA\r\n$/);
  });

  it('waits for each reply when the server does not offer PIPELINING', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['n1@nopipe.test', 'n2@nopipe.test'], body: message('nopipe') });
    await tern.waitFor(is('Delivery', 'n2@nopipe.test'));
    assert.deepEqual(order, ['mail-answered'], 'nothing was sent before the reply to MAIL');
    const mailRead = reads.plain.find((r) => /^MAIL FROM/m.test(r));
    assert.doesNotMatch(mailRead ?? '', /RCPT/);
  });
});
