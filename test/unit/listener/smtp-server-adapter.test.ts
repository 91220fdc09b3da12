import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { adaptServer } from '../../../src/listener/smtp-server-adapter.js';
import type { ReplyEvent } from '../../../src/listener/smtp-server-adapter.js';
import { makeCert } from '../../helpers/certs.js';
import { RawSmtp } from '../../helpers/smtp-client.js';

// The canary: src/listener/smtp-server-adapter.ts replaces or wraps these internals. When
// an upgrade of smtp-server moves them, this fails here instead of in production.
describe('smtp-server internals the adapter relies on', () => {
  const source = (fn: unknown) => String(fn);
  const proto = SMTPConnection.prototype as unknown as Record<string, unknown>;

  it('has the methods the adapter wraps or calls', () => {
    for (const name of ['init', 'connectionReady', '_setListeners', '_onCommand', '_createParser', 'send', 'close', 'upgrade', '_getEnhancedStatusCode']) {
      assert.equal(typeof proto[name], 'function', `SMTPConnection.prototype.${name}`);
    }
    assert.equal(typeof (SMTPStream.prototype as unknown as Record<string, unknown>)._write, 'function');
    for (const field of ['this._parser = this._createParser()', 'this._nextHandler = false', 'this._handlerPending = false', 'this._ready = false', 'this._dataStream = false']) {
      assert.ok(source(SMTPConnection).includes(field), `constructor sets ${field}`);
    }
  });

  it('greets from init() after a fixed 100 ms timer, which the adapter replaces', () => {
    const init = source(proto.init);
    assert.match(init, /this\._setListeners\(/);
    assert.match(init, /setTimeout\(\(\) => this\.connectionReady\(\), 100\)/);
    assert.match(init, /maxClients/);
    // SMTPServer.connect() builds the connection and calls init(): the adapter's connect() does the rest itself.
    const connect = source(SMTPServer.prototype.connect);
    assert.match(connect, /new SMTPConnection\(this, socket, socketOptions\)/);
    assert.match(connect, /connection\.init\(\)/);
    assert.match(connect, /this\.connections\.add\(connection\)/);
    // With disableReverseLookup the greeting does not wait for the system resolver.
    assert.match(source(proto.connectionReady), /options\.disableReverseLookup/);
    // Commands before the greeting are refused (the early-talker check).
    assert.match(source(proto._onCommand), /if \(!this\._ready\)/);
    // While a handler runs or a received message awaits its answer, the client waits for us.
    assert.match(source(proto._onTimeout), /this\._handlerPending \|\| \(this\._dataStream && this\._parser && !this\._parser\._dataMode\)/);
  });

  it('replaces the command parser on STARTTLS, and every parser dispatches through _onCommand', () => {
    assert.match(source(proto.upgrade), /this\._parser = this\._createParser\(\)/);
    assert.match(source(proto._createParser), /parser\.oncommand = \(command, callback\) => this\._onCommand\(command, callback\)/);
    assert.match(source((SMTPStream.prototype as unknown as Record<string, unknown>)._write), /this\._dataMode/);
  });

  it('ends every session through _onClose, the TLS socket\'s close included (upgrade() strips the plain socket\'s listeners)', () => {
    assert.match(source(proto._setListeners), /this\._socket\.on\('close', hadError => this\._onCloseEvent\(hadError\)\)/);
    assert.match(source(proto.upgrade), /this\._socket\.removeAllListeners\(\)/);
    assert.match(source(proto.upgrade), /tlsSocket\.once\('close', \(hadError\) => this\._onCloseEvent\(hadError\)\)/);
    assert.match(source(proto._onCloseEvent), /this\._onClose\(\)/);
  });
});

describe('adaptServer on a live smtp-server', () => {
  const cert = makeCert('adapter.test');
  const replies: ReplyEvent[] = [];
  const closed: string[] = [];
  let server: SMTPServer;
  let port = 0;

  before(async () => {
    server = new SMTPServer({
      key: cert.key,
      cert: cert.cert,
      size: 1000,
      hideENHANCEDSTATUSCODES: false,
      authOptional: true,
      logger: false,
      onData: (stream, _session, cb) => {
        stream.resume();
        stream.on('end', () => cb());
      },
    });
    adaptServer(server, {
      greetingDelayMs: () => 0,
      recordDeadlineMs: () => 0,
      sessionMaxMs: () => 0,
      onReply: (e) => replies.push(e),
      closed: (conn) => closed.push(conn.session.id),
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const addr = server.server.address();
    port = typeof addr === 'object' && addr ? addr.port : 0;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('reports every reply with the command it answers, smtp-server\'s own included', async () => {
    const smtp = await RawSmtp.open(port);
    await smtp.command('EHLO client.test');
    assert.match(await smtp.command('MAIL FROM:<a@client.test> SIZE=5000'), /^552 5\.3\.4 /);
    smtp.close();
    const greeting = replies.find((r) => r.code === 220);
    assert.equal(greeting?.command, undefined);
    const size = replies.find((r) => r.code === 552);
    assert.deepEqual({ command: size?.command, enhanced: size?.enhanced }, { command: 'MAIL', enhanced: '5.3.4' });
    assert.equal(typeof size?.session.id, 'string');
  });

  it('gives the connection a new parser at STARTTLS and guards that one too', async () => {
    const smtp = await RawSmtp.open(port);
    await smtp.command('EHLO client.test');
    const conn = [...server.connections].at(-1) as unknown as { _parser: unknown };
    const before = conn._parser;
    assert.match(await smtp.startTls(), /^220/);
    assert.match(await smtp.command('EHLO client.test'), /^250/);
    assert.notEqual(conn._parser, before);
    smtp.send('MAIL FROM:<a@client.test>\n');
    assert.match(await smtp.reply(), /^521 5\.5\.2 /);
    assert.equal(await smtp.reply(), '');
    assert.ok(smtp.closed);
    const id = (conn as unknown as { session: { id: string } }).session.id;
    for (let i = 0; i < 250 && !closed.includes(id); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(closed.filter((c) => c === id).length, 1, 'the end of a TLS session is seen once');
  });
});
