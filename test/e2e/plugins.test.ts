import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { tempDir } from '../helpers/temp-dir.js';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { REPO_ROOT } from '../helpers/tern-process.js';
import type { TernProcess } from '../helpers/tern-process.js';

describe('plugins: hooks and the example plugins', () => {
  let world: World;
  let tern: TernProcess;
  const hookLog = join(tempDir('tern-hooks-'), 'calls.log');
  const calls = () => readFileSync(hookLog, 'utf8').split('\n').filter(Boolean);

  before(async () => {
    writeFileSync(hookLog, '');
    process.env.TERN_TEST_HOOK_LOG = hookLog;
    world = await new World({ tls: '127.0.0.62', dead: '127.0.0.63', plain: '127.0.0.64' }).start();
    tern = await world.tern({
      outbound: 'temp_fail_intervals=1h*5',
      files: {
        plugins: [
          join(REPO_ROOT, 'test/fixtures/plugins/throwing.mjs'),
          join(REPO_ROOT, 'dist/plugins/suppression-list.js'),
          join(REPO_ROOT, 'dist/plugins/smart-host.js'),
          join(REPO_ROOT, 'test/fixtures/plugins/policy.mjs'),
        ].join('\n') + '\n',
        suppression_list: '# do not mail these\nblocked@good.test\n@banned.test\n',
        'smart_host.ini': 'host=127.0.0.64\ndomains=relayed.test\n',
        'dsn.ini': 'enable_bounce=true\n',
      },
    });
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
    delete process.env.TERN_TEST_HOOK_LOG;
  });

  it('suppression-list refuses a listed address or domain at the end of DATA', async () => {
    for (const rcpt of ['blocked@good.test', 'anyone@banned.test']) {
      await assert.rejects(
        sendMail({ port: tern.port, from: 'app@client.test', to: ['fine@good.test', rcpt], body: message('suppressed') }),
        (err: Error & { response?: string }) => new RegExp(`^550 5\\.7\\.1 Recipient ${rcpt.replace('.', '\\.')} is on the suppression list`).test(err.response ?? ''),
      );
      // One Rejection record names the hook as the reason and the recipients refused.
      const rejection = await tern.waitFor((r) => r.type === 'Rejection' && (r.recipients as string[] | undefined)?.includes(rcpt) === true);
      assert.deepEqual([rejection.command, rejection.reason, (rejection.response as { code: number }).code], ['END-OF-MESSAGE', 'hook', 550]);
    }
    writeFileSync(join(tern.configDir, 'suppression_list'), '');
    const res = await sendMail({ port: tern.port, from: 'app@client.test', to: ['blocked@good.test'], body: message('unsuppressed') });
    assert.match(res.response, /^250 /, 'the list is re-read when it changes');
  });

  it('smart-host routes a domain to its next hop instead of the MX, and a throwing plugin costs nothing', async () => {
    // relayed.test has no DNS records at all: only get_mx can route it.
    await sendMail({ port: tern.port, from: 'app@client.test', to: ['x@relayed.test'], body: message('smarthost') });
    const d = await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === 'x@relayed.test');
    assert.deepEqual(d.peer, { name: '127.0.0.64', address: '127.0.0.64', port: world.port });
    assert.ok(world.mx2.mailbox.some((m) => m.to.includes('x@relayed.test')));
    assert.ok(tern.records.some((r) => r.msg === 'plugin hook failed; carrying on without it' && r.plugin === 'throwing' && r.hook === 'get_mx'));
    assert.ok(calls().some((l) => /^delivered \S+ x@relayed\.test 250 tls=false$/.test(l)));
    assert.ok(calls().includes('log Delivery x@relayed.test'), 'log_disposition sees every record');
    assert.ok(calls().includes('log Reception x@relayed.test'));
  });

  it('deferred can drop an entry or change its delay', async () => {
    await sendMail({ port: tern.port, from: 'app@client.test', to: ['tempfail-drop@good.test'], body: message('drop') });
    await tern.waitFor((r) => r.msg === 'entry dropped by a deferred hook');
    assert.equal(tern.dispositions('TransientFailure').filter((r) => r.recipient === 'tempfail-drop@good.test').length, 0);
    await sendMail({ port: tern.port, from: 'app@client.test', to: ['tempfail-soon@good.test'], body: message('soon') });
    const first = await tern.waitFor((r) => r.type === 'TransientFailure' && r.recipient === 'tempfail-soon@good.test');
    const wait = Date.parse(first.next_attempt_at as string) - Date.parse(first.timestamp as string);
    assert.ok(wait <= 1500, `the hook's 1 s, not the schedule's hour (${wait} ms)`);
    await tern.waitFor((r) => r.type === 'TransientFailure' && r.recipient === 'tempfail-soon@good.test' && r.attempt === 2);
  });

  it('bounce can suppress the report to the sender', async () => {
    await sendMail({ port: tern.port, from: 'nobounce@other.test', to: ['permfail-hook@good.test'], body: message('nobounce') });
    const b = await tern.waitFor((r) => r.type === 'Bounce' && r.recipient === 'permfail-hook@good.test');
    await sendMail({ port: tern.port, from: 'app@other.test', to: ['permfail-hook2@good.test'], body: message('bounce') });
    const b2 = await tern.waitFor((r) => r.type === 'Bounce' && r.recipient === 'permfail-hook2@good.test');
    await tern.waitFor((r) => r.type === 'Reception' && (r.report as { original_id?: string } | undefined)?.original_id === b2.id);
    assert.equal(tern.records.filter((r) => r.type === 'Reception' && (r.report as { original_id?: string } | undefined)?.original_id === b.id).length, 0);
  });

  it('send_email can postpone an attempt', async () => {
    await sendMail({ port: tern.port, from: 'app@client.test', to: ['later@good.test'], body: message('later') });
    const d = await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === 'later@good.test');
    assert.ok(calls().some((l) => l.startsWith('send_email delay ')));
    assert.ok(Date.parse(d.timestamp as string) - Date.parse(d.queued_at as string) >= 1000, 'delivered only after the hook let it go');
    assert.equal(d.attempt, 1, 'a postponed attempt is not counted as one');
  });
});
