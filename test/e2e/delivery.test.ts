import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { World } from '../helpers/world.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { is } from '../helpers/tern-process.js';
import type { TernProcess } from '../helpers/tern-process.js';

describe('delivery end to end through the daemon', () => {
  let world: World;
  let tern: TernProcess;

  before(async () => {
    world = await new World().start();
    tern = await world.tern();
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
  });

  it('delivers over STARTTLS and logs Reception and Delivery', async () => {
    const res = await sendMail({ port: tern.port, from: 'alice@client.test', to: ['bob@good.test'], body: message('tls') });
    assert.match(res.response, /^250 2\.0\.0 Queued as [A-Z0-9]+/);
    const [mail] = await world.mx.waitForMail(1);
    assert.equal(mail.secure, true);
    assert.deepEqual(mail.to, ['bob@good.test']);
    assert.equal(mail.from, 'alice@client.test');
    assert.match(mail.body.toString(), /^Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby tern\.test \(Tern outbound\) with ESMTP id /);
    assert.match(mail.body.toString(), /Subject: tls\r\n/);
    const delivery = await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === 'bob@good.test');
    assert.equal(delivery.tls, true);
    assert.match(String(delivery.tls_version), /^TLSv1\.[23]$/);
    assert.match(String(delivery.tls_cipher), /^TLS_|ECDHE|AES/);
    assert.equal(delivery.domain, 'good.test');
    assert.equal(delivery.attempt, 1);
    assert.deepEqual(delivery.peer, { name: 'mx.good.test', address: '127.0.0.2', port: world.port });
    assert.equal((delivery.response as { code: number }).code, 250);
    const reception = await tern.waitFor((r) => r.type === 'Reception' && r.id === delivery.message_id);
    assert.deepEqual(reception.recipients, ['bob@good.test']);
  });

  it('splits a multi-domain message into one entry per domain', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['x1@good.test', 'x2@good.test', 'y1@other.test'], body: message('split') });
    const d1 = await tern.waitFor(is('Delivery', 'x1@good.test'));
    const d2 = await tern.waitFor(is('Delivery', 'x2@good.test'));
    const d3 = await tern.waitFor(is('Delivery', 'y1@other.test'));
    assert.equal(d1.id, d2.id, 'same-domain recipients share one entry');
    assert.notEqual(d1.id, d3.id);
    assert.equal(d1.message_id, d3.message_id);
    const good = world.mx.mailbox.find((m) => m.to.includes('x1@good.test'))!;
    assert.deepEqual(good.to.sort(), ['x1@good.test', 'x2@good.test'], 'one transaction for both good.test recipients');
    const other = world.mx2.mailbox.find((m) => m.to.includes('y1@other.test'))!;
    assert.equal(other.secure, false, 'the plain MX offers no STARTTLS');
    assert.equal(d3.tls, false);
    assert.equal(d3.tls_version, null);
    assert.equal(d3.tls_cipher, null);
  });

  it('bounces a 5xx recipient and delivers the rest of the same transaction', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['ok1@good.test', 'permfail1@good.test'], body: message('partial') });
    const bounce = await tern.waitFor(is('Bounce', 'permfail1@good.test'));
    assert.deepEqual(bounce.response, { code: 550, enhanced_code: '5.1.1', content: 'No such user here' });
    await tern.waitFor(is('Delivery', 'ok1@good.test'));
    const got = world.mx.mailbox.find((m) => m.to.includes('ok1@good.test'))!;
    assert.deepEqual(got.to, ['ok1@good.test']);
  });

  it('falls back to the next MX when the first refuses connections', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['z@fallback.test'], body: message('fallback') });
    const d = await tern.waitFor(is('Delivery', 'z@fallback.test'));
    assert.deepEqual(d.peer, { name: 'mx.good.test', address: '127.0.0.2', port: world.port });
  });

  it('delivers to the domain itself when it has no MX (implicit MX)', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['i@implicit.test'], body: message('implicit') });
    const d = await tern.waitFor(is('Delivery', 'i@implicit.test'));
    assert.equal((d.peer as { address: string }).address, '127.0.0.4');
  });

  it('bounces at once for a null MX (556 5.1.10) and for NXDOMAIN', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['n@nullmx.test', 'q@nowhere.test'], body: message('nullmx') });
    const nullmx = await tern.waitFor(is('Bounce', 'n@nullmx.test'));
    assert.equal((nullmx.response as { code: number }).code, 556);
    assert.equal((nullmx.response as { enhanced_code: string }).enhanced_code, '5.1.10');
    const nx = await tern.waitFor(is('Bounce', 'q@nowhere.test'));
    assert.equal((nx.response as { enhanced_code: string }).enhanced_code, '5.1.2');
    assert.equal(nx.attempt, 1);
  });

  it('rejects 5xx after the final dot as a bounce for every recipient of the transaction', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['rejectdata@other.test'], body: message('content') });
    const b = await tern.waitFor(is('Bounce', 'rejectdata@other.test'));
    assert.equal((b.response as { code: number }).code, 554);
  });
});
