import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { tempDir } from '../helpers/temp-dir.js';
import { REPO_ROOT, is } from '../helpers/tern-process.js';
import type { LogRecord, TernProcess } from '../helpers/tern-process.js';

const reportOf = (id: unknown) => (r: LogRecord) => r.type === 'Reception' && (r.report as { original_id?: string } | undefined)?.original_id === id;

describe('tracing a message by its Message-ID, and reports counted as received', () => {
  let world: World;
  let tern: TernProcess;
  const hookLog = join(tempDir('tern-trace-'), 'envelopes.log');

  before(async () => {
    writeFileSync(hookLog, '');
    process.env.TERN_TEST_HOOK_LOG = hookLog;
    world = await new World({ tls: '127.0.0.132', dead: '127.0.0.133', plain: '127.0.0.134' }).start();
    tern = await world.tern({
      outbound: 'temp_fail_intervals=1h',
      files: { 'dsn.ini': 'enable_bounce=true\n', plugins: join(REPO_ROOT, 'test/fixtures/plugins/envelope-note.mjs') + '\n' },
    });
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
    delete process.env.TERN_TEST_HOOK_LOG;
  });

  const metric = async (name: string): Promise<string | undefined> => {
    const text = await (await fetch(`${tern.api}/metrics`)).text();
    return new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1];
  };

  it('puts the Message-ID header in the Reception and in every disposition of the message, and counts its bounce report as received', async () => {
    const res = await sendMail({ port: tern.port, from: 'app@client.test', to: ['ok-trace@good.test', 'permfail-trace@good.test'], body: message('trace one') });
    const queueId = /Queued as ([A-Z0-9]+)/.exec(res.response)![1];
    const reception = await tern.waitFor((r) => r.type === 'Reception' && r.id === queueId);
    assert.equal(reception.message_id_header, '<traceone@client.test>');
    const delivery = await tern.waitFor(is('Delivery', 'ok-trace@good.test'));
    const bounce = await tern.waitFor(is('Bounce', 'permfail-trace@good.test'));
    assert.equal(delivery.message_id_header, '<traceone@client.test>');
    assert.equal(bounce.message_id_header, '<traceone@client.test>');
    assert.equal(delivery.message_id, queueId);

    // The bounce report is a message Tern received from itself: its Reception names its own Message-ID.
    const report = await tern.waitFor(reportOf(bounce.id));
    assert.match(String(report.message_id_header), /^<[0-9a-f-]+@tern\.test>$/);
    // The report goes to client.test, which does not exist: its own bounce carries the report's Message-ID.
    const reportBounce = await tern.waitFor((r) => r.type === 'Bounce' && r.message_id === report.id);
    assert.equal(reportBounce.message_id_header, report.message_id_header);

    assert.equal(await metric('tern_messages_received_total'), '2', 'the message and its bounce report');
    assert.equal(await metric('tern_dsn_generated_total{kind="bounce"}'), '1');
  });

  it('logs message_id_header null for a message without one, and shows the last peer of a deferred entry', async () => {
    await sendMail({ port: tern.port, from: 'app@client.test', to: ['tempfail-trace@good.test'], body: 'Subject: no id\r\n\r\nbody\r\n' });
    const reception = await tern.waitFor((r) => r.type === 'Reception' && (r.recipients as string[]).includes('tempfail-trace@good.test'));
    assert.equal(reception.message_id_header, null);
    const deferred = await tern.waitFor(is('TransientFailure', 'tempfail-trace@good.test'));
    assert.equal(deferred.message_id_header, null);
    const shown = (await (await fetch(`${tern.api}/queue/${deferred.id}`)).json()) as { last_peer: unknown };
    assert.deepEqual(shown.last_peer, { name: 'mx.good.test', address: '127.0.0.132', port: world.port });
  });

  it("shows queue_outbound plugins the envelope's DSN parameters as they are queued", async () => {
    await sendMail({
      port: tern.port,
      from: 'app@client.test',
      to: ['dsn-trace@good.test'],
      body: message('dsn params'),
      dsn: { ret: 'HDRS', envid: 'trace-env-1', notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;orig@client.test' },
    });
    await tern.waitFor(is('Delivery', 'dsn-trace@good.test'));
    const seen = readFileSync(hookLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { dsn: unknown; recipients: { address: string; dsn?: unknown }[] });
    const envelope = seen.find((e) => e.recipients.some((r) => r.address === 'dsn-trace@good.test'))!;
    assert.deepEqual(envelope.dsn, { ret: 'HDRS', envid: 'trace-env-1' });
    assert.deepEqual(envelope.recipients[0].dsn, { notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;orig@client.test' });
  });
});
