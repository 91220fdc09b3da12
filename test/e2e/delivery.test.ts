import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { World } from '../helpers/world.js';
import { message, sendMail } from '../helpers/smtp-client.js';
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
    assert.equal(delivery.domain, 'good.test');
    assert.equal(delivery.attempt, 1);
    assert.deepEqual(delivery.peer, { name: 'mx.good.test', address: '127.0.0.2', port: 25 });
    assert.equal((delivery.response as { code: number }).code, 250);
    const reception = await tern.waitFor((r) => r.type === 'Reception' && r.id === delivery.message_id);
    assert.deepEqual(reception.recipients, ['bob@good.test']);
  });
});
