import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Server, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { loadConfig } from '../../src/config/index.js';
import { systemClock } from '../../src/core/index.js';
import { DnsResolver } from '../../src/dns/index.js';
import { DeliveryAgent, DeliverySession } from '../../src/delivery/index.js';
import type { SessionRequest } from '../../src/delivery/index.js';
import { createLogger } from '../../src/log/index.js';
import type { QueueEntry } from '../../src/spool/index.js';
import { TestDnsServer } from '../helpers/dns-server.js';
import { TestMx } from '../helpers/mx-server.js';
import { writeConfig } from '../helpers/tern-process.js';
import { scriptedServer } from '../helpers/scripted-server.js';
import { startOnOnePort } from '../helpers/ports.js';
import { Writable } from 'node:stream';

/** A misbehaving peer on `port`: replies as scripted per command, then goes silent. */
function silentAfter(host: string, port: number, script: (line: string, socket: Socket) => void): Promise<Server> {
  return scriptedServer(host, port, '220 garbage.test ESMTP', (socket) => (line) => script(line, socket));
}

function request(over: Partial<SessionRequest>): SessionRequest {
  const t = { connect: 2, greeting: 1, command: 1, mail: 1, rcpt: 1, dataInit: 1, dataBlock: 1, dataDone: 1 };
  return {
    peer: { name: 'mx.test', address: '127.0.0.1', port: 25 },
    helo: 'tern.test',
    tlsMode: 'opportunistic',
    tls: {},
    timeouts: t,
    sender: 'a@client.test',
    recipients: [{ address: 'x@dest.test' }],
    size: 20,
    eightBit: false,
    body: () => Buffer.from('Subject: t\r\n\r\nbody\r\n'),
    rewriteReply: (r) => r,
    ...over,
  };
}

function entry(domain: string, recipients: string[]): QueueEntry {
  return {
    id: 'TEST.1', messageId: 'TEST', domain, sender: 'a@client.test',
    recipients: recipients.map((address) => ({ address, state: 'pending' as const })),
    dsn: {}, smtpUtf8: false, bodyType: '7bit', queuedAt: Date.now(), size: 40, entriesOfMessage: 1, attempts: 1, tempFailures: 0, nextAttemptAt: Date.now(),
  };
}

describe('delivery sessions against misbehaving servers', () => {
  const dns = new TestDnsServer();
  const servers: Server[] = [];
  const busy = new TestMx('127.0.0.7', 0, { greeting: { code: 421, text: '4.3.2 Too busy, try another host' } });
  const good = new TestMx('127.0.0.8', 0);
  let agent: DeliveryAgent;
  /** Every MX host here listens on this one port (the agent's remote_port), the kernel's pick. */
  let port = 0;

  before(async () => {
    dns
      .add('stall-tls.test', { type: 'MX', preference: 10, exchange: '127.0.0.6' })
      .add('stall-mail.test', { type: 'A', data: '127.0.0.9' })
      .add('stall-data.test', { type: 'A', data: '127.0.0.10' })
      .add('busy.test', { type: 'MX', preference: 10, exchange: 'mx1.busy.test' }, { type: 'MX', preference: 20, exchange: 'mx2.busy.test' })
      .add('mx1.busy.test', { type: 'A', data: '127.0.0.7' })
      .add('mx2.busy.test', { type: 'A', data: '127.0.0.8' });
    await dns.start();
    port = await startOnOnePort([busy, good]);
    // After the 220 to STARTTLS it injects a dangling `250-` continuation and never speaks TLS.
    servers.push(await silentAfter('127.0.0.6', port, (line, s) => {
      if (/^EHLO/i.test(line)) s.write('250-garbage.test\r\n250 STARTTLS\r\n');
      else if (/^STARTTLS/i.test(line)) s.write('220 Ready to start TLS\r\n250-injected\r\n');
    }));
    // Answers MAIL with half a multi-line reply.
    servers.push(await silentAfter('127.0.0.9', port, (line, s) => {
      if (/^EHLO/i.test(line)) s.write('250 garbage.test\r\n');
      else if (/^MAIL/i.test(line)) s.write('250-this never ends\r\n');
    }));
    // Accepts the envelope and the body, then never answers the final dot.
    servers.push(await silentAfter('127.0.0.10', port, (line, s) => {
      if (/^EHLO/i.test(line)) s.write('250 garbage.test\r\n');
      else if (/^(MAIL|RCPT)/i.test(line)) s.write('250 2.1.0 ok\r\n');
      else if (/^DATA/i.test(line)) s.write('354 go on\r\n');
    }));
    const config = loadConfig(writeConfig({
      me: 'tern.test\n',
      'outbound.ini': `local_mx_ok=true\nconnect_timeout=2\ngreeting_timeout=1\nmail_timeout=1\nrcpt_timeout=1\ndata_init_timeout=1\ndata_block_timeout=1\ndata_done_timeout=1\nremote_port=${port}\n`,
    }));
    const resolver = new DnsResolver({ servers: [{ host: '127.0.0.1', port: dns.port }], timeoutMs: 1000, cacheMaxEntries: 100, clock: systemClock });
    const logger = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) as never });
    agent = new DeliveryAgent(config, { resolver: () => resolver, bodyBytesOrStream: () => Readable.from([Buffer.from('Subject: t\r\n\r\nbody\r\n')]), logger, clock: systemClock });
  });
  after(async () => {
    for (const s of servers) s.close();
    await Promise.all([dns.stop(), busy.stop(), good.stop()]);
  });

  it('treats data injected after the 220 to STARTTLS as a failed TLS handshake', { timeout: 20000 }, async () => {
    for (const tlsMode of ['opportunistic', 'required'] as const) {
      const result = await new DeliverySession().run(request({ tlsMode, peer: { name: 'mx.stall-tls.test', address: '127.0.0.6', port } }));
      assert.equal(result.kind, 'unavailable');
      assert.ok(result.kind === 'unavailable' && result.tlsFailed, `${tlsMode}: a TLS failure`);
      assert.equal(result.kind === 'unavailable' && result.reply.enhanced, '4.7.5');
    }
    // Opportunistic: the agent retries the host in plaintext, where the server then stalls MAIL.
    const outcome = await agent.deliver(entry('stall-tls.test', ['x@stall-tls.test']));
    assert.equal(outcome.recipients[0].result, 'deferred');
    assert.equal(outcome.recipients[0].reply.code, 451);
  });

  it('defers, by the MAIL phase timeout, when a reply never ends', { timeout: 20000 }, async () => {
    const outcome = await agent.deliver(entry('stall-mail.test', ['x@stall-mail.test']));
    assert.equal(outcome.recipients[0].result, 'deferred');
    assert.equal(outcome.recipients[0].reply.enhanced, '4.4.2');
    assert.match(outcome.recipients[0].reply.text, /timeout after 1 s waiting in the mail phase/);
  });

  it('defers, by the final-dot timeout, when the server never answers the message', { timeout: 20000 }, async () => {
    const outcome = await agent.deliver(entry('stall-data.test', ['x@stall-data.test']));
    assert.equal(outcome.recipients[0].result, 'deferred');
    assert.match(outcome.recipients[0].reply.text, /data-done phase/);
  });

  it('moves on to the next MX after a 421 greeting', { timeout: 20000 }, async () => {
    const outcome = await agent.deliver(entry('busy.test', ['y@busy.test']));
    assert.equal(outcome.recipients[0].result, 'delivered');
    assert.equal(outcome.peer?.address, '127.0.0.8');
    assert.equal(busy.connections, 1);
    assert.equal(good.mailbox.length, 1);
  });
});
