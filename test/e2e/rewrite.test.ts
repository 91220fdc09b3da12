import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import type { TernProcess } from '../helpers/tern-process.js';

describe('rewrite_delivery_status rules end to end', () => {
  let world: World;
  let tern: TernProcess;

  before(async () => {
    world = await new World({ tls: '127.0.0.32', dead: '127.0.0.33', plain: '127.0.0.34' }).start();
    tern = await world.tern({
      outbound: 'temp_fail_intervals=1s*5',
      files: {
        'rewrite_delivery_status.json': JSON.stringify({
          '^451 4\\.2\\.1 Mailbox busy': 550,
          'other.test': { '^550 5\\.1\\.1 No such user': 450 },
        }),
      },
    });
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
  });

  it('bounces a 4xx rewritten to 5xx at once, and the log says so', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['tempfail-rw@good.test'], body: message('rw1') });
    const bounce = await tern.waitFor((r) => r.type === 'Bounce' && r.recipient === 'tempfail-rw@good.test');
    assert.equal(bounce.attempt, 1);
    assert.deepEqual(bounce.response, {
      code: 550,
      enhanced_code: '5.2.1',
      content: 'Mailbox busy, try later (tern: status was rewritten from 451 -> 550)',
    });
  });

  it('retries a 5xx rewritten to 4xx, only for the domain the rule is scoped to', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['permfail-rw@other.test', 'permfail-rw@good.test'], body: message('rw2') });
    const tf = await tern.waitFor((r) => r.type === 'TransientFailure' && r.recipient === 'permfail-rw@other.test');
    assert.deepEqual(tf.response, { code: 450, enhanced_code: '4.1.1', content: 'No such user here (tern: status was rewritten from 550 -> 450)' });
    await tern.waitFor((r) => r.type === 'TransientFailure' && r.recipient === 'permfail-rw@other.test' && r.attempt === 2);
    const good = await tern.waitFor((r) => r.type === 'Bounce' && r.recipient === 'permfail-rw@good.test');
    assert.equal((good.response as { code: number }).code, 550);
  });

  it('keeps the previous rules when the file is broken, and reports it once', async () => {
    writeFileSync(join(tern.configDir, 'rewrite_delivery_status.json'), '{"(unclosed": 500}');
    const failed = await tern.waitFor((r) => r.msg === 'config reload failed; keeping the previous config');
    assert.match(String(failed.error), /rewrite_delivery_status\.json: \(unclosed/);
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['tempfail-rw2@good.test'], body: message('rw3') });
    const bounce = await tern.waitFor((r) => r.type === 'Bounce' && r.recipient === 'tempfail-rw2@good.test');
    assert.equal(bounce.attempt, 1, 'the old rule still applies');
    assert.equal(tern.records.filter((r) => r.msg === 'config reload failed; keeping the previous config' && r.level === 'error').length, 1);
  });
});
