import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { makeCert } from '../helpers/certs.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { is } from '../helpers/tern-process.js';
import type { LogRecord } from '../helpers/tern-process.js';

/** Reads one SMTP reply (multi-line replies whole) from a plain socket. */
function readReply(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      if (/(^|\n)\d{3} [^\n]*\r\n$/.test(buf)) {
        socket.off('data', onData);
        resolve(buf);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

/** The SHA-256 fingerprint of the certificate the listener presents after STARTTLS. */
async function servedCertificate(port: number): Promise<string> {
  const socket = connect({ port, host: '127.0.0.1' });
  try {
    assert.match(await readReply(socket), /^220 /);
    socket.write('EHLO client.test\r\n');
    assert.match(await readReply(socket), /STARTTLS/);
    socket.write('STARTTLS\r\n');
    assert.match(await readReply(socket), /^220 /);
    const secure = tlsConnect({ socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    const fingerprint = secure.getPeerCertificate().fingerprint256;
    secure.destroy();
    return fingerprint;
  } finally {
    socket.destroy();
  }
}

const reloaded = (file: string) => (r: LogRecord) => r.msg === 'config reloaded' && (r.files as string[]).includes(file);

/** Issue #14.7: a reload applies what it says it applies, names the files, and warns about what needs a restart. */
describe('a reload applies what it says, and says what it cannot', () => {
  let world: World;
  before(async () => {
    world = await new World({ tls: '127.0.0.232', dead: '127.0.0.233', plain: '127.0.0.234' }).start();
  });
  after(async () => {
    await world?.stop();
  });

  it('serves a renewed listener certificate from the next STARTTLS on, with no restart', { timeout: 60000 }, async () => {
    const first = makeCert('tern.test');
    const renewed = makeCert('tern.test');
    const tern = await world.tern({ files: { 'tls_key.pem': first.key, 'tls_cert.pem': first.cert } });
    try {
      const before = await servedCertificate(tern.port);
      writeFileSync(join(tern.configDir, 'tls_key.pem'), renewed.key);
      writeFileSync(join(tern.configDir, 'tls_cert.pem'), renewed.cert);
      const record = await tern.waitFor(reloaded('tls_cert.pem'));
      assert.ok((record.changed as { file: string }[]).some((c) => c.file === 'tls_cert.pem'), 'the certificate is listed as applied');
      const after = await servedCertificate(tern.port);
      assert.notEqual(after, before);
      const res = await sendMail({ port: tern.port, requireTLS: true, from: 'a@client.test', to: ['renewed@good.test'], body: message('renewed') });
      assert.match(res.response, /^250 /);
    } finally {
      await tern.stop();
    }
  });

  it('applies a new message size limit to the next transaction', { timeout: 60000 }, async () => {
    const tern = await world.tern();
    try {
      writeFileSync(join(tern.configDir, 'smtp.ini'), '[main]\nlisten=127.0.0.1:0\nmax_message_size=2k\n');
      await tern.waitFor(reloaded('smtp.ini'));
      await assert.rejects(
        sendMail({ port: tern.port, from: 'a@client.test', to: ['big@good.test'], body: message('x'.repeat(4096)) }),
        (err: Error & { responseCode?: number }) => err.responseCode === 552,
      );
    } finally {
      await tern.stop();
    }
  });

  it('warns, naming file and key, when listen addresses change, and keeps serving on the bound ones', { timeout: 60000 }, async () => {
    const tern = await world.tern();
    try {
      writeFileSync(join(tern.configDir, 'smtp.ini'), '[main]\nlisten=127.0.0.1:2\nbanner=Renamed ESMTP\n');
      writeFileSync(join(tern.configDir, 'http.ini'), 'listen=127.0.0.1:3\n');
      const smtpWarning = await tern.waitFor((r) => r.msg === 'config change needs a restart; the running value stays' && r.file === 'smtp.ini');
      assert.equal(smtpWarning.level, 'warn');
      assert.equal(smtpWarning.key, 'listen');
      assert.equal(smtpWarning.configured, '127.0.0.1:2');
      const httpWarning = await tern.waitFor((r) => r.msg === 'config change needs a restart; the running value stays' && r.file === 'http.ini');
      assert.equal(httpWarning.key, 'listen');
      const record = await tern.waitFor(reloaded('http.ini'));
      assert.ok(!(record.changed as { file: string; keys: string[] }[]).some((c) => c.keys.includes('listen')), 'listen is not claimed as applied');
      const socket = connect({ port: tern.port, host: '127.0.0.1' });
      assert.match(await readReply(socket), /^220 tern\.test ESMTP Renamed ESMTP/, 'the banner, which can change, did');
      socket.destroy();
      const health = await fetch(`${tern.api}/health`);
      assert.equal(health.status, 200, 'the admin API still answers where it was bound');
    } finally {
      await tern.stop();
    }
  });

  it('switches log.ini format live: logfmt lines from the reload on, JSON again after the next', { timeout: 60000 }, async () => {
    const tern = await world.tern();
    try {
      writeFileSync(join(tern.configDir, 'log.ini'), '[main]\nformat=logfmt\n');
      await tern.waitFor((r) => r.msg === 'unparsable' && /msg="config reloaded"/.test(String(r.line)));
      await sendMail({ port: tern.port, from: 'a@client.test', to: ['logfmt@good.test'], body: message('logfmt') });
      await tern.waitFor((r) => r.msg === 'unparsable' && /type=Delivery/.test(String(r.line)) && /recipient=logfmt@good\.test/.test(String(r.line)));
      writeFileSync(join(tern.configDir, 'log.ini'), '[main]\nformat=json\n');
      await tern.waitFor(reloaded('log.ini'));
      await sendMail({ port: tern.port, from: 'a@client.test', to: ['json-again@good.test'], body: message('json') });
      await tern.waitFor(is('Delivery', 'json-again@good.test'));
    } finally {
      await tern.stop();
    }
  });
});

describe('a reload that leaves dns.ini alone keeps the DNS cache', () => {
  it('delivers from the cache after a rewrite rules reload while the DNS server is down', { timeout: 60000 }, async () => {
    const world = await new World({ tls: '127.0.0.235', dead: '127.0.0.236', plain: '127.0.0.237' }).start();
    let dnsUp = true;
    const tern = await world.tern();
    try {
      await sendMail({ port: tern.port, from: 'a@client.test', to: ['cached@good.test'], body: message('cached') });
      await tern.waitFor(is('Delivery', 'cached@good.test'));
      await world.dns.stop();
      dnsUp = false;
      writeFileSync(join(tern.configDir, 'rewrite_delivery_status.json'), JSON.stringify({ '^451 4\\.2\\.1 Mailbox busy': 550 }));
      await tern.waitFor(reloaded('rewrite_delivery_status.json'));
      await sendMail({ port: tern.port, from: 'a@client.test', to: ['still-cached@good.test'], body: message('still cached') });
      await tern.waitFor(is('Delivery', 'still-cached@good.test'));
      assert.equal(tern.dispositions('TransientFailure').length, 0);
    } finally {
      await tern.stop();
      await Promise.all([dnsUp ? world.dns.stop() : undefined, world.mx.stop(), world.mx2.stop()]);
    }
  });
});
