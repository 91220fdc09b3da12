import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { World } from '../helpers/world.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { is } from '../helpers/tern-process.js';


describe('retries, expiry and flush', () => {
  let world: World;
  before(async () => {
    world = await new World().start();
  });
  after(async () => {
    await world?.stop();
  });

  it('retries a 4xx after the configured interval and then delivers', async () => {
    const tern = await world.tern({ outbound: 'temp_fail_intervals=1s*3' });
    try {
      await sendMail({ port: tern.port, from: 'a@client.test', to: ['flaky1@good.test'], body: message('retry') });
      const tf = await tern.waitFor(is('TransientFailure', 'flaky1@good.test'));
      assert.equal((tf.response as { code: number }).code, 451);
      assert.equal(tf.attempt, 1);
      const next = Date.parse(tf.next_attempt_at as string) - Date.parse(tf.timestamp as string);
      assert.ok(next >= 900 && next <= 1100, `next attempt 1 s later, got ${next} ms`);
      const d = await tern.waitFor(is('Delivery', 'flaky1@good.test'));
      assert.equal(d.attempt, 2);
      assert.equal(d.id, tf.id);
    } finally {
      await tern.stop();
    }
  });

  it('bounces when the retries are used up', async () => {
    const tern = await world.tern({ outbound: 'temp_fail_intervals=1s*2' });
    try {
      await sendMail({ port: tern.port, from: 'a@client.test', to: ['tempfail1@good.test'], body: message('exhaust') });
      const bounce = await tern.waitFor(is('Bounce', 'tempfail1@good.test'));
      assert.equal(bounce.attempt, 3, 'first attempt plus two retries');
      assert.equal(tern.dispositions('TransientFailure').filter((r) => r.recipient === 'tempfail1@good.test').length, 2);
      assert.deepEqual(bounce.response, { code: 451, enhanced_code: '4.2.1', content: 'Mailbox busy, try later' });
    } finally {
      await tern.stop();
    }
  });

  it('temp_fail_intervals=none bounces on the first temporary failure', async () => {
    const tern = await world.tern({ outbound: 'temp_fail_intervals=none' });
    try {
      await sendMail({ port: tern.port, from: 'a@client.test', to: ['tempfail2@good.test'], body: message('none') });
      const bounce = await tern.waitFor(is('Bounce', 'tempfail2@good.test'));
      assert.equal(bounce.attempt, 1);
    } finally {
      await tern.stop();
    }
  });

  it('expires an entry whose next attempt would pass max_queue_lifetime', async () => {
    const tern = await world.tern({ outbound: 'temp_fail_intervals=1s*20\nmax_queue_lifetime=2s' });
    try {
      await sendMail({ port: tern.port, from: 'a@client.test', to: ['tempfail3@good.test'], body: message('expire') });
      const exp = await tern.waitFor(is('Expiration', 'tempfail3@good.test'));
      const response = exp.response as { code: number; enhanced_code: string; content: string };
      assert.equal(response.enhanced_code, '5.4.7');
      assert.match(response.content, /last error: 451 4\.2\.1 Mailbox busy/);
      assert.equal(tern.dispositions('Bounce').length, 0);
    } finally {
      await tern.stop();
    }
  });

  it('SIGHUP flushes deferred entries at once, without a second copy of one in flight', async () => {
    const tern = await world.tern({ outbound: 'temp_fail_intervals=1h' });
    try {
      await sendMail({ port: tern.port, from: 'a@client.test', to: ['flaky2@good.test'], body: message('flush') });
      await tern.waitFor(is('TransientFailure', 'flaky2@good.test'));
      tern.signal('SIGHUP');
      tern.signal('SIGHUP');
      const d = await tern.waitFor(is('Delivery', 'flaky2@good.test'));
      assert.equal(d.attempt, 2);
      await tern.waitFor((r) => r.msg === 'queue flushed');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(world.mx.mailbox.filter((m) => m.to.includes('flaky2@good.test')).length, 1, 'delivered exactly once');
    } finally {
      await tern.stop();
    }
  });

  it('disabled=true accepts mail but holds delivery until re-enabled without a restart', async () => {
    const tern = await world.tern({ outbound: 'disabled=true' });
    try {
      await sendMail({ port: tern.port, from: 'a@client.test', to: ['held@good.test'], body: message('held') });
      await tern.waitFor((r) => r.type === 'Reception');
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(tern.dispositions('Delivery').length, 0);
      const { writeFileSync, readFileSync } = await import('node:fs');
      const path = `${tern.configDir}/outbound.ini`;
      writeFileSync(path, readFileSync(path, 'utf8').replace('disabled=true', 'disabled=false'));
      await tern.waitFor(is('Delivery', 'held@good.test'));
      await tern.waitFor((r) => r.msg === 'config reloaded');
    } finally {
      await tern.stop();
    }
  });
});
