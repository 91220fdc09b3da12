import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Server, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { DeliverySession } from '../../src/delivery/index.js';
import type { SessionRequest, SessionResult } from '../../src/delivery/index.js';
import { scriptedServer } from '../helpers/scripted-server.js';
import { TestMx } from '../helpers/mx-server.js';
import { portOf } from '../helpers/ports.js';

/** Where each server of this file listens: its own address, on a port the kernel picked. */
const ports = new Map<string, number>();

async function listening(host: string, server: Promise<Server>): Promise<Server> {
  const s = await server;
  ports.set(host, portOf(s));
  return s;
}

function request(address: string, over: Partial<SessionRequest> = {}): SessionRequest {
  return {
    peer: { name: `mx-${address}`, address, port: ports.get(address) ?? 0 },
    helo: 'tern.test',
    tlsMode: 'opportunistic',
    tls: {},
    timeouts: { connect: 2, greeting: 2, command: 2, mail: 2, rcpt: 2, dataInit: 2, dataBlock: 2, dataDone: 2 },
    sender: 'a@client.test',
    recipients: [{ address: 'x@dest.test' }],
    size: 26,
    eightBit: false,
    body: () => Buffer.from('Subject: t\r\n\r\nbody\r\n'),
    rewriteReply: (r) => r,
    ...over,
  };
}

const done = (r: SessionResult) => {
  assert.equal(r.kind, 'done', JSON.stringify(r));
  return r as Extract<SessionResult, { kind: 'done' }>;
};

/** A server following a script per command verb, recording every command line it reads. */
function recording(host: string, lines: string[], ehlo: string, answer: (line: string, socket: Socket) => boolean = () => false, answerDot = false): Promise<Server> {
  return listening(host, scriptedServer(host, 0, '220 scripted ESMTP', (socket) => {
    let inData = false;
    return (line) => {
      if (inData) {
        if (line === '.') {
          inData = false;
          if (!(answerDot && answer(line, socket))) socket.write('250 2.0.0 queued\r\n');
        } else if (answerDot) lines.push(`data: ${line}`);
        return;
      }
      lines.push(line);
      if (answer(line, socket)) return;
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO') socket.write(ehlo);
      else if (verb === 'DATA') {
        inData = true;
        socket.write('354 go\r\n');
      } else if (verb === 'QUIT') socket.end('221 bye\r\n');
      else socket.write('250 2.0.0 ok\r\n');
    };
  }));
}

describe("Tern's SMTP client against scripted servers", () => {
  const servers: Server[] = [];
  const seen: Record<string, string[]> = { refusing: [], size: [], helo: [], lmtp: [], mailRefused: [], dropper: [] };
  const mx = new TestMx('127.0.0.180');

  before(async () => {
    // PIPELINING, refuses every recipient and so DATA (RFC 2920 §3.1).
    servers.push(
      await recording('127.0.0.177', seen.refusing, '250-refusing.test\r\n250-PIPELINING\r\n250 DSN\r\n', (line, s) => {
        if (/^RCPT TO:<no/i.test(line)) s.write('550 5.1.1 no such user\r\n');
        else if (/^DATA/i.test(line) && !seen.refusing.some((l) => /^RCPT TO:<yes/i.test(l))) s.write('554 5.5.1 no valid recipients\r\n');
        else return false;
        return true;
      }),
    );
    servers.push(await recording('127.0.0.178', seen.size, '250-size.test\r\n250 SIZE 10\r\n'));
    // Knows no EHLO.
    servers.push(
      await recording('127.0.0.179', seen.helo, '', (line, s) => {
        if (/^EHLO/i.test(line)) s.write('502 5.5.2 command not recognized\r\n');
        else if (/^HELO/i.test(line)) s.write('250 old.test\r\n');
        else return false;
        return true;
      }),
    );
    // LMTP: every reply after the dot in one write, as RFC 2033 §4.2 servers often send them.
    servers.push(
      await recording('127.0.0.181', seen.lmtp, '250-lmtp.test\r\n250 PIPELINING\r\n', (line, s) => {
        if (line === '.') s.write('250 2.0.0 <a@x> ok\r\n250 2.0.0 <b@x> ok\r\n250 2.0.0 <c@x> ok\r\n');
        else return false;
        return true;
      }, true),
    );
    // Refuses MAIL, yet (broken) accepts the recipient and lets DATA through.
    servers.push(
      await recording('127.0.0.182', seen.mailRefused, '250-broken.test\r\n250 PIPELINING\r\n', (line, s) => {
        if (/^MAIL/i.test(line)) s.write('451 4.3.0 not now\r\n');
        else if (line === '.') {
          // Where the message ends; the body before it is not recorded.
          seen.mailRefused.push(`end of data after ${seen.mailRefused.at(-1)}`);
          s.write('250 2.0.0 queued\r\n');
        } else return false;
        return true;
      }, true),
    );
    // Hangs up in the middle of a large body.
    servers.push(
      await listening('127.0.0.183', scriptedServer('127.0.0.183', 0, '220 dropper ESMTP', (socket) => {
        let inData = false;
        return (line) => {
          if (inData) return void (seen.dropper.length > 100 ? socket.destroy() : seen.dropper.push(line));
          const verb = line.slice(0, 4).toUpperCase();
          if (verb === 'EHLO') socket.write('250 dropper.test\r\n');
          else if (verb === 'DATA') {
            inData = true;
            socket.write('354 go\r\n');
          } else socket.write('250 2.0.0 ok\r\n');
        };
      })),
    );
    await mx.start();
    ports.set(mx.host, mx.port);
  });
  after(async () => {
    for (const s of servers) s.close();
    await mx.stop();
  });

  it('handles a refused DATA after every recipient was refused, then RSETs and carries the next transaction', async () => {
    const session = new DeliverySession();
    const first = done(await session.run(request('127.0.0.177', { recipients: [{ address: 'no1@dest.test' }, { address: 'no2@dest.test' }] })));
    assert.deepEqual(first.recipients.map((r) => [r.result, r.reply.code]), [['failed', 550], ['failed', 550]]);
    assert.equal(first.nextHopDsn, true);
    assert.ok(await session.reset());
    const second = done(await session.transact(request('127.0.0.177', { recipients: [{ address: 'yes@dest.test' }] })));
    assert.equal(second.recipients[0].result, 'delivered');
    session.quit();
    assert.deepEqual(seen.refusing.slice(1), ['MAIL FROM:<a@client.test>', 'RCPT TO:<no1@dest.test>', 'RCPT TO:<no2@dest.test>', 'DATA', 'RSET', 'MAIL FROM:<a@client.test>', 'RCPT TO:<yes@dest.test>', 'DATA']);
  });

  it('refuses a message over the SIZE the server announced, without sending it', async () => {
    const session = new DeliverySession();
    const r = done(await session.run(request('127.0.0.178', { size: 1000 })));
    assert.equal(r.recipients[0].result, 'failed');
    assert.equal(r.recipients[0].reply.code, 552);
    assert.equal(r.recipients[0].reply.enhanced, '5.3.4');
    assert.equal(r.nextHopDsn, false);
    session.quit();
    assert.ok(!seen.size.some((l) => /^MAIL/i.test(l)));
  });

  it('falls back to HELO when EHLO is refused', async () => {
    const session = new DeliverySession();
    const r = done(await session.run(request('127.0.0.179')));
    assert.equal(r.recipients[0].result, 'delivered');
    session.quit();
    assert.deepEqual(seen.helo.slice(0, 3), ['EHLO tern.test', 'HELO tern.test', 'MAIL FROM:<a@client.test>']);
  });

  it('LMTP: takes every per-recipient reply after the dot, also when they arrive in one write', async () => {
    const session = new DeliverySession();
    const r = done(await session.run(request('127.0.0.181', { lmtp: true, recipients: [{ address: 'a@x' }, { address: 'b@x' }, { address: 'c@x' }] })));
    session.quit();
    assert.deepEqual(r.recipients.map((o) => [o.address, o.result]), [['a@x', 'delivered'], ['b@x', 'delivered'], ['c@x', 'delivered']]);
    assert.equal(r.protocolError, undefined);
  });

  it('sends no message after a refused MAIL, even when a pipelining server lets DATA through', async () => {
    const session = new DeliverySession();
    const r = done(await session.run(request('127.0.0.182')));
    session.quit();
    assert.deepEqual(r.recipients.map((o) => [o.result, o.reply.code]), [['deferred', 451]]);
    // Only the empty message that ends the DATA at once (RFC 2920 §3.1), never the body: the
    // server would have queued it with no valid sender.
    assert.deepEqual(r.recipients[0].reply.code, 451);
    assert.ok(seen.mailRefused.includes('end of data after DATA'));
    assert.ok(!seen.mailRefused.some((l) => l.startsWith('data: ')), 'no line of the message was sent');
  });

  it('closes the queue file it streams from when the server hangs up mid-body', async () => {
    const session = new DeliverySession();
    const body = Readable.from((function* () {
      // Far more than the socket buffers hold: the server hangs up long before the end.
      for (let i = 0; i < 100_000; i++) yield Buffer.from('x'.repeat(998) + '\r\n');
    })());
    const r = done(await session.run(request('127.0.0.183', { size: 100_000_000, body: () => body })));
    session.destroy();
    assert.equal(r.recipients[0].result, 'deferred');
    assert.ok(body.destroyed, 'the source stream is destroyed, not left open and paused');
  });

  it('streams a large body with dot-stuffing and backpressure; the server gets it intact', async () => {
    const line = '.a line that starts with a dot, as the server must see it\r\n';
    const big = Buffer.from(line.repeat(80000));
    const session = new DeliverySession();
    const events: string[] = [];
    const r = done(
      await session.run(
        request('127.0.0.180', {
          size: big.length,
          body: () => Readable.from([big.subarray(0, 1000001), big.subarray(1000001)]),
          tracer: { send: (l) => events.push(`send ${l}`), reply: (rep) => events.push(`reply ${rep.code}`), connect: () => events.push('connect'), close: () => events.push('close') },
        }),
      ),
    );
    assert.equal(r.recipients[0].result, 'delivered');
    session.quit();
    const [mail] = await mx.waitForMail(1);
    assert.ok(mail.body.equals(big), 'the body arrived byte for byte');
    assert.equal(events[0], 'connect');
    assert.ok(events.includes(`send <message body, ${big.length + 80000 + 3} octets>`), 'the tracer saw the stuffed body go out');
    assert.ok(events.includes(`send MAIL FROM:<a@client.test> SIZE=${big.length}`));
  });

  it('traces each transaction of a reused session under its own tracer', async () => {
    const first: string[] = [];
    const second: string[] = [];
    const session = new DeliverySession();
    done(await session.run(request('127.0.0.180', { tracer: { send: (l) => first.push(l) } })));
    assert.ok(await session.reset());
    done(await session.transact(request('127.0.0.180', { recipients: [{ address: 'y@dest.test' }], tracer: { send: (l) => second.push(l) } })));
    session.quit();
    assert.equal(first.filter((l) => l.startsWith('MAIL FROM')).length, 1);
    assert.ok(second.includes('RCPT TO:<y@dest.test>'), 'the second transaction is traced by its own tracer');
    assert.ok(!first.includes('RCPT TO:<y@dest.test>'));
  });
});
