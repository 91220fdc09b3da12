import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { HookRunner } from '../../../src/hooks/index.js';
import type { EntryView, TernPlugin } from '../../../src/hooks/index.js';
import { createLogger } from '../../../src/log/index.js';
import type { QueueEntry } from '../../../src/spool/index.js';

/** A runner over `plugins` (in config/plugins order) whose log records land in `records`. */
function runner(plugins: Record<string, TernPlugin>) {
  const records: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) records.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const logger = createLogger({ destination: destination as never });
  return { hooks: new HookRunner(Object.entries(plugins).map(([name, plugin]) => ({ name, plugin })), logger), records };
}

function entry(): QueueEntry {
  return {
    id: 'E.1', messageId: 'M', domain: 'good.test', sender: 'a@client.test',
    recipients: [{ address: 'x@good.test', state: 'pending' as const }, { address: 'y@good.test', state: 'pending' as const }],
    dsn: {}, smtpUtf8: false, bodyType: '7bit', queuedAt: 0, size: 40, entriesOfMessage: 1, attempts: 1, tempFailures: 0, nextAttemptAt: 0,
  };
}

const failed = (records: Record<string, unknown>[]) => records.filter((r) => r.msg === 'plugin hook failed; carrying on without it');
const reply = { code: 451, enhanced: '4.2.1', text: 'Mailbox busy' };

describe('HookRunner: plugins as an operator lists them in config/plugins', () => {
  it('lets the first plugin with an answer decide; later plugins are not asked', async () => {
    const asked: string[] = [];
    const { hooks } = runner({
      first: { deferred: () => void asked.push('first') },
      second: { deferred: () => (asked.push('second'), { action: 'drop' }) },
      third: { deferred: () => (asked.push('third'), { action: 'delay', seconds: 5 }) },
    });
    assert.deepEqual(await hooks.deferred(entry(), { delay: 60, reply }), { action: 'drop' });
    assert.deepEqual(asked, ['first', 'second'], 'a plugin that returns nothing passes the decision on');
    assert.deepEqual(hooks.names, ['first', 'second', 'third']);
  });

  it('treats null like no answer, and gives no decision when no plugin answers', async () => {
    const { hooks } = runner({ a: { send_email: () => null as never }, b: {} });
    assert.equal(await hooks.sendEmail(entry()), undefined);
    assert.equal(hooks.has('send_email'), true);
    assert.equal(hooks.has('bounce'), false, 'a hook no plugin implements');
  });

  it('logs a plugin that throws or rejects, naming plugin and hook, and carries on with the next', async () => {
    const { hooks, records } = runner({
      throws: { get_mx: () => { throw new Error('boom'); } },
      rejects: { get_mx: async () => { throw new Error('async boom'); } },
      routes: { get_mx: (_e, domain) => [{ host: `smarthost.${domain}`, port: 587 }] },
    });
    assert.deepEqual(await hooks.getMx(entry()), [{ host: 'smarthost.good.test', port: 587 }]);
    const logged = failed(records);
    assert.deepEqual(logged.map((r) => [r.level, r.plugin, r.hook]), [['error', 'throws', 'get_mx'], ['error', 'rejects', 'get_mx']]);
    assert.deepEqual(logged.map((r) => (r.err as { message: string }).message), ['boom', 'async boom']);
  });

  it('gives no decision, and no failure beyond the log, when the only plugin throws', async () => {
    const { hooks, records } = runner({ broken: { bounce: () => { throw new Error('nope'); } } });
    assert.equal(await hooks.bounce(entry(), { recipients: ['x@good.test'], reply }), undefined);
    assert.equal(failed(records).length, 1);
  });

  it('calls every plugin on a notification, also after one of them throws', async () => {
    const told: string[] = [];
    const { hooks, records } = runner({
      one: { delivered: (_e, info) => void told.push(`one ${info.recipients.join(',')}`) },
      broken: { delivered: () => { throw new Error('accounting down'); } },
      two: { delivered: async (_e, info) => void told.push(`two ${info.reply.code}`) },
    });
    await hooks.delivered(entry(), { recipients: ['x@good.test'], reply: { code: 250, enhanced: '2.0.0', text: 'ok' }, peer: null, tls: true });
    assert.deepEqual(told, ['one x@good.test', 'two 250']);
    assert.deepEqual(failed(records).map((r) => r.plugin), ['broken']);
  });

  it('shows a plugin a copy of the entry: what it changes never reaches the queue', async () => {
    const e = entry();
    const { hooks } = runner({
      meddler: {
        send_email: (view: EntryView) => {
          (view.recipients as unknown as { state: string }[])[0].state = 'delivered';
          (view as { sender: string }).sender = 'forged@evil.test';
          return undefined;
        },
      },
    });
    await hooks.sendEmail(e);
    assert.equal(e.recipients[0].state, 'pending');
    assert.equal(e.sender, 'a@client.test');
  });

  it("passes a message to queue_outbound and returns a plugin's refusal as its SMTP reply", async () => {
    const refusal = { action: 'deny' as const, reply: { code: 550, enhanced: '5.7.1', text: 'suppressed' } };
    const { hooks } = runner({ policy: { queue_outbound: (m) => (m.envelope.recipients.some((r) => r.address.startsWith('blocked')) ? refusal : undefined) } });
    const envelope = { sender: 'a@client.test', recipients: [{ address: 'blocked@good.test' }], dsn: {}, smtpUtf8: false, bodyType: '7bit' as const };
    assert.deepEqual(await hooks.queueOutbound({ envelope, headers: 'Subject: x\r\n' }), refusal);
  });
});
