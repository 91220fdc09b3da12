import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:net';
import { scriptedServer } from '../helpers/scripted-server.js';
import { SMTPServer } from 'smtp-server';
import { World } from '../helpers/world.js';
import { TestMx } from '../helpers/mx-server.js';
import { listenOn } from '../helpers/ports.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { is } from '../helpers/tern-process.js';
import type { TernProcess } from '../helpers/tern-process.js';


/** Offers STARTTLS, then breaks every handshake; accepts mail in plaintext. Counts STARTTLS commands. */
function brokenTlsServer(host: string, port: number, counter: { starttls: number; mails: number }): Promise<Server> {
  return scriptedServer(host, port, '220 broken-tls.test ESMTP', (socket) => {
    let inData = false;
    return (line) => {
      if (inData) {
        if (line === '.') {
          inData = false;
          counter.mails++;
          socket.write('250 2.0.0 ok plain\r\n');
        }
        return;
      }
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO') socket.write('250-broken-tls.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n');
      else if (verb === 'STAR') {
        counter.starttls++;
        socket.write('220 2.0.0 go ahead\r\n');
        socket.end('this is not a TLS server hello\r\n');
      } else if (verb === 'MAIL' || verb === 'RCPT') socket.write('250 2.1.0 ok\r\n');
      else if (verb === 'DATA') {
        inData = true;
        socket.write('354 go on\r\n');
      } else if (verb === 'QUIT') socket.end('221 bye\r\n');
      else socket.write('250 ok\r\n');
    };
  });
}

describe('TLS policy, routes and IPv6', () => {
  let world: World;
  let tern: TernProcess;
  let broken: Server;
  const brokenCount = { starttls: 0, mails: 0 };
  let v6: TestMx;
  const seenAuth: string[] = [];
  let smarthost: SMTPServer;
  let smarthostPort = 0;
  let plainAuthHost: SMTPServer;
  let lmtpServer: SMTPServer;
  const lmtpSeen: string[] = [];

  before(async () => {
    world = new World({ tls: '127.0.0.72', dead: '127.0.0.73', plain: '127.0.0.74' });
    world.dns
      .add('verifyfail.test', { type: 'MX', preference: 10, exchange: 'alias.verifyfail.test' })
      .add('alias.verifyfail.test', { type: 'A', data: '127.0.0.72' })
      .add('brokentls.test', { type: 'MX', preference: 10, exchange: 'mx.brokentls.test' })
      .add('mx.brokentls.test', { type: 'A', data: '127.0.0.75' })
      .add('v6.test', { type: 'MX', preference: 10, exchange: 'mx.v6.test' })
      .add('mx.v6.test', { type: 'AAAA', data: '::1' })
      .add('dual.test', { type: 'MX', preference: 10, exchange: 'mx.dual.test' })
      .add('mx.dual.test', { type: 'AAAA', data: '::1' }, { type: 'A', data: '127.0.0.74' });
    await world.start();
    broken = await brokenTlsServer('127.0.0.75', world.port, brokenCount);
    v6 = new TestMx('::1', world.port);
    await v6.start();
    const authServer = (secure: boolean) =>
      new SMTPServer({
        ...(secure ? { key: world.cert.key, cert: world.cert.cert } : { hideSTARTTLS: true }),
        authMethods: ['PLAIN', 'LOGIN'],
        allowInsecureAuth: !secure,
        logger: false,
        onAuth: (auth, _session, cb) => {
          seenAuth.push(`${auth.username}:${auth.password}:${secure ? 'tls' : 'plain'}`);
          cb(auth.password === 'relay-pass' ? null : new Error('bad credentials'), { user: auth.username });
        },
        onData: (stream, session, cb) => {
          stream.resume();
          stream.on('end', () => cb(null, `2.0.0 relayed for ${String(session.user)}`));
        },
      });
    smarthost = authServer(true);
    plainAuthHost = authServer(false);
    // Next hops named in routes.ini, each on a port of its own (the kernel's pick).
    smarthostPort = await listenOn(smarthost.server, '127.0.0.76');
    const plainAuthPort = await listenOn(plainAuthHost.server, '127.0.0.77');
    // An LMTP mailbox server: one reply per recipient after the message (RFC 2033).
    lmtpServer = new SMTPServer({
      lmtp: true,
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      logger: false,
      onData: (stream, session, cb) => {
        stream.resume();
        stream.on('end', () => {
          lmtpSeen.push(...session.envelope.rcptTo.map((r) => r.address));
          cb(
            null,
            session.envelope.rcptTo.map((r) =>
              r.address.startsWith('full') ? Object.assign(new Error('4.2.2 Mailbox full'), { responseCode: 452 }) : `2.0.0 <${r.address}> delivered`,
            ) as unknown as string,
          );
        });
      },
    });
    const lmtpPort = await listenOn(lmtpServer.server, '127.0.0.79');
    tern = await world.tern({
      outbound: 'temp_fail_intervals=1h',
      files: {
        'tls.ini': '[outbound]\nca=outbound-ca.pem\n',
        'outbound-ca.pem': world.cert.cert,
        'routes.ini': [
          '[other.test]', 'tls=required',
          '[good.test]', 'tls=verify',
          '[verifyfail.test]', 'tls=verify',
          '[smarthost.test]', 'host=127.0.0.76', `port=${smarthostPort}`, 'auth_user=relay-user', 'auth_pass=relay-pass', 'tls=required',
          '[cleartext.test]', 'host=127.0.0.77', `port=${plainAuthPort}`, 'auth_user=relay-user', 'auth_pass=relay-pass',
          '[lmtp.test]', 'host=127.0.0.79', `port=${lmtpPort}`, 'lmtp=true',
          '[bound.test]', 'host=mx.other.test', `port=${world.port}`, 'bind=127.0.0.9', 'bind_helo=out1.tern.test', 'tls=disabled',
          '',
        ].join('\n'),
      },
    });
  });
  after(async () => {
    await tern?.stop();
    broken?.close();
    await v6?.stop();
    smarthost?.close();
    plainAuthHost?.close();
    lmtpServer?.close();
    await world?.stop();
  });

  it('tls=verify delivers when the certificate is valid for the MX name', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['v@good.test'], body: message('verify') });
    const d = await tern.waitFor(is('Delivery', 'v@good.test'));
    assert.equal(d.tls, true);
  });

  it('tls=verify defers when the certificate does not name the MX host', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['v@verifyfail.test'], body: message('verifyfail') });
    const tf = await tern.waitFor(is('TransientFailure', 'v@verifyfail.test'));
    assert.equal((tf.response as { enhanced_code: string }).enhanced_code, '4.7.5');
    assert.match((tf.response as { content: string }).content, /TLS with alias\.verifyfail\.test .* failed \(verify\)/);
  });

  it('tls=required defers when the MX offers no STARTTLS', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['r@other.test'], body: message('required') });
    const tf = await tern.waitFor(is('TransientFailure', 'r@other.test'));
    assert.equal((tf.response as { code: number }).code, 451);
    assert.equal((tf.response as { enhanced_code: string }).enhanced_code, '4.7.10');
    assert.ok(!world.mx2.recipients().includes('r@other.test'));
  });

  it('opportunistic TLS retries a host in plaintext after a failed handshake, and remembers it', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['b1@brokentls.test'], body: message('broken1') });
    const d = await tern.waitFor(is('Delivery', 'b1@brokentls.test'));
    assert.equal(d.tls, false);
    assert.ok(tern.records.some((r) => r.msg === 'TLS handshake failed; retrying this host in plaintext'));
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['b2@brokentls.test'], body: message('broken2') });
    await tern.waitFor(is('Delivery', 'b2@brokentls.test'));
    assert.equal(brokenCount.starttls, 1, 'the second delivery did not try STARTTLS again');
    assert.equal(brokenCount.mails, 2);
  });

  it('routes a domain to a smart host with AUTH over TLS, and never sends credentials in clear', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['s@smarthost.test'], body: message('smarthost') });
    const d = await tern.waitFor(is('Delivery', 's@smarthost.test'));
    assert.deepEqual(d.peer, { name: '127.0.0.76', address: '127.0.0.76', port: smarthostPort });
    assert.match((d.response as { content: string }).content, /relayed for relay-user/);
    assert.deepEqual(seenAuth, ['relay-user:relay-pass:tls']);
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['c@cleartext.test'], body: message('cleartext') });
    const tf = await tern.waitFor(is('TransientFailure', 'c@cleartext.test'));
    assert.equal((tf.response as { enhanced_code: string }).enhanced_code, '4.7.10');
    assert.equal(seenAuth.length, 1, 'no password went to the plaintext host');
  });

  it('binds the source address and EHLO name a route asks for', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['x@bound.test'], body: message('bound') });
    const d = await tern.waitFor(is('Delivery', 'x@bound.test'));
    assert.equal(d.tls, false, 'tls=disabled');
    const got = world.mx2.mailbox.find((m) => m.to.includes('x@bound.test'))!;
    assert.equal(got.clientAddress, '127.0.0.9');
    assert.equal(got.helo, 'out1.tern.test');
  });

  it('delivers with LMTP, with an outcome per recipient from the replies after the message', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['a@lmtp.test', 'full@lmtp.test', 'b@lmtp.test'], body: message('lmtp') });
    const a = await tern.waitFor(is('Delivery', 'a@lmtp.test'));
    assert.deepEqual(a.response, { code: 250, enhanced_code: '2.0.0', content: '<a@lmtp.test> delivered' });
    const b = await tern.waitFor(is('Delivery', 'b@lmtp.test'));
    assert.equal((b.response as { content: string }).content, '<b@lmtp.test> delivered');
    const full = await tern.waitFor(is('TransientFailure', 'full@lmtp.test'));
    assert.equal((full.response as { code: number }).code, 452);
    assert.deepEqual(lmtpSeen, ['a@lmtp.test', 'full@lmtp.test', 'b@lmtp.test']);
  });

  it('delivers over IPv6, and inet_prefer orders the families', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['six@v6.test', 'six@dual.test'], body: message('v6') });
    const d6 = await tern.waitFor(is('Delivery', 'six@v6.test'));
    assert.equal((d6.peer as { address: string }).address, '::1');
    const dual = await tern.waitFor(is('Delivery', 'six@dual.test'));
    assert.equal((dual.peer as { address: string }).address, '::1', 'default prefers IPv6 at equal preference');
    const v4 = await world.tern({ outbound: 'inet_prefer=v4' });
    try {
      await sendMail({ port: v4.port, from: 'a@client.test', to: ['four@dual.test'], body: message('v4') });
      const d4 = await v4.waitFor(is('Delivery', 'four@dual.test'));
      assert.equal((d4.peer as { address: string }).address, '127.0.0.74');
    } finally {
      await v4.stop();
    }
  });
});

describe('routes.ini validation', () => {
  it('names the section and key of a bad route', async () => {
    const { spawnSync } = await import('node:child_process');
    const { join } = await import('node:path');
    const { REPO_ROOT, writeConfig } = await import('../helpers/tern-process.js');
    const dir = writeConfig({ 'routes.ini': '[example.com]\ntls=sometimes\n[other.example]\nauth_user=x\n' });
    const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), 'config', 'check', '--config', dir], { encoding: 'utf8' });
    assert.equal(res.status, 78);
    assert.match(res.stdout, /^routes\.ini: \[example\.com\] tls="sometimes": /m);
  });
});
