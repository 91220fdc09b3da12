import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { World } from '../helpers/world.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import type { LogRecord, TernProcess } from '../helpers/tern-process.js';
import { hashPassword } from '../../src/listener/index.js';

const PASSWORD = 's3cret pass';

/** The value of one Prometheus sample, 0 when absent. */
function sample(metrics: string, name: string, labels: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('AUTH brute force and the trace of every refusal', () => {
  let world: World;
  let tern: TernProcess;
  const rejections = (pred: (r: LogRecord) => boolean) => tern.records.filter((r) => r.type === 'Rejection' && pred(r));
  const from = (address: string) => (r: LogRecord) => (r.client as { address: string }).address === address;

  before(async () => {
    world = await new World().start();
    tern = await world.tern({
      smtp: [
        'max_message_size=64k',
        'auth_failure_delay=0.05',
        'auth_failure_limit=3',
        'auth_client_failure_limit=5',
        'auth_client_failure_window=1h',
        'auth_client_lockout=5',
        'soft_error_limit=2',
        'error_sleep_time=0.05',
        'hard_error_limit=5',
      ].join('\n'),
      files: {
        relay_acl_allow: '127.0.0.1/32\n',
        auth_users: `app:${await hashPassword(PASSWORD)}\n`,
        'tls_key.pem': world.cert.key,
        'tls_cert.pem': world.cert.cert,
      },
    });
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
  });

  it('answers wrong passwords 535 up to auth_failure_limit, then 421 4.7.0 and closes the connection', async () => {
    const smtp = await RawSmtp.openTls(tern.port, '127.0.0.21');
    for (let i = 0; i < 2; i++) assert.match(await smtp.authPlain('mallory', `guess ${i}`), /^535 5\.7\.8 /);
    assert.match(await smtp.authLogin('mallory', 'guess 2'), /^535 5\.7\.8 /, 'AUTH LOGIN counts the same');
    assert.match(await smtp.authPlain('mallory', 'guess 3'), /^421 4\.7\.0 /);
    assert.equal(await smtp.reply(), '', 'the connection is closed');
    smtp.close();

    const failures = await tern.waitForCount((r) => r.type === 'Rejection' && from('127.0.0.21')(r), 4);
    assert.deepEqual(
      failures.map((r) => [r.command, r.reason, r.auth_user, (r.response as { code: number }).code]),
      [...Array(3).fill(['AUTH', 'auth_failed', 'mallory', 535]), ['AUTH', 'auth_limit', 'mallory', 421]],
    );
    assert.equal((failures[0].client as { tls: boolean }).tls, true);
    assert.deepEqual(failures[0].response, { code: 535, enhanced_code: '5.7.8', content: 'Authentication credentials invalid' });
  });

  it('refuses AUTH to an address with too many failures for a while, not to other addresses, then lets the right password in', async () => {
    const first = await RawSmtp.openTls(tern.port, '127.0.0.22');
    for (let i = 0; i < 3; i++) assert.match(await first.authPlain('mallory', `guess ${i}`), /^535 /);
    first.close();
    const second = await RawSmtp.openTls(tern.port, '127.0.0.22');
    for (let i = 0; i < 2; i++) assert.match(await second.authPlain('app', `guess ${i}`), /^535 /);
    // Five failures from 127.0.0.22 within the window: even the right password is refused now.
    assert.match(await second.authPlain('app', PASSWORD), /^454 4\.7\.0 /);
    assert.match(await second.command('NOOP'), /^250/, 'the connection itself stays usable');
    second.close();
    const third = await RawSmtp.openTls(tern.port, '127.0.0.22');
    assert.match(await third.authPlain('app', PASSWORD), /^454 4\.7\.0 /, 'a new connection from the same address is refused too');
    third.close();

    const elsewhere = await RawSmtp.openTls(tern.port, '127.0.0.23');
    assert.match(await elsewhere.authPlain('app', PASSWORD), /^235 /, 'another address still authenticates');
    elsewhere.close();

    // Once the lockout is over, the right password works again from 127.0.0.22.
    let reply = '';
    for (let tries = 0; tries < 100 && !reply.startsWith('235'); tries++) {
      const again = await RawSmtp.openTls(tern.port, '127.0.0.22');
      reply = await again.authPlain('app', PASSWORD);
      again.close();
      if (!reply.startsWith('235')) {
        assert.match(reply, /^454 4\.7\.0 /);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    assert.match(reply, /^235 /);

    const locked = rejections((r) => from('127.0.0.22')(r) && r.reason === 'auth_locked');
    assert.ok(locked.length >= 2);
    assert.ok(locked.every((r) => r.command === 'AUTH' && r.auth_user === 'app' && (r.response as { enhanced_code: string }).enhanced_code === '4.7.0'));
    assert.deepEqual(
      rejections((r) => from('127.0.0.22')(r) && r.reason === 'auth_failed').map((r) => r.auth_user),
      ['mallory', 'mallory', 'mallory', 'app', 'app'],
    );
  });

  it('tells parallel connections from one address no more wrong passwords than the address may make', async () => {
    const conns = await Promise.all(Array.from({ length: 12 }, () => RawSmtp.openTls(tern.port, '127.0.0.24')));
    const replies = await Promise.all(conns.map((c, i) => c.authPlain('app', `parallel guess ${i}`)));
    for (const c of conns) c.close();
    assert.equal(replies.filter((r) => r.startsWith('535 ')).length, 5, 'auth_client_failure_limit');
    assert.ok(replies.every((r) => /^(535 5\.7\.8|454 4\.7\.0) /.test(r)), replies.join('\n'));
  });

  it('writes one Rejection for a relay denial, a SIZE= over the limit, a bad recipient and an oversized message', async () => {
    const outsider = await RawSmtp.open(tern.port, '127.0.0.1', '127.0.0.9');
    await outsider.command('EHLO outsider.test');
    assert.match(await outsider.command('MAIL FROM:<big@outsider.test> SIZE=99999999'), /^552 5\.3\.4 /);
    assert.match(await outsider.command('MAIL FROM:<spammer@outsider.test>'), /^250/);
    assert.match(await outsider.command('RCPT TO:<victim@good.test>'), /^550 5\.7\.1 /);
    outsider.close();

    const local = await RawSmtp.open(tern.port);
    await local.command('EHLO client.test');
    await local.command('MAIL FROM:<app@client.test>');
    // smtp-server refuses the syntax; Tern refuses what smtp-server lets through but cannot be routed.
    assert.match(await local.command('RCPT TO:<nodomain>'), /^501 5\.1\.3 /);
    assert.match(await local.command('RCPT TO:<postmaster>'), /^553 5\.1\.3 /);
    assert.match(await local.command('RCPT TO:<big@good.test>'), /^250/);
    assert.match(await local.command('DATA'), /^354/);
    local.send(`Subject: big\r\n\r\n${'x'.repeat(998)}\r\n`.repeat(80) + '.\r\n');
    assert.match(await local.reply(), /^552 5\.3\.4 /);
    local.close();

    const size = await tern.waitFor((r) => r.type === 'Rejection' && r.sender === 'big@outsider.test');
    assert.deepEqual([size.command, size.reason, (size.client as { address: string }).address], ['MAIL', 'message_size', '127.0.0.9']);
    assert.equal((size.response as { code: number }).code, 552);

    const relay = await tern.waitFor((r) => r.type === 'Rejection' && r.recipient === 'victim@good.test');
    assert.deepEqual(
      [relay.command, relay.reason, relay.sender, (relay.client as { address: string }).address, relay.response],
      ['RCPT', 'relay_denied', 'spammer@outsider.test', '127.0.0.9', { code: 550, enhanced_code: '5.7.1', content: 'Relaying denied: authenticate or send from an allowed network' }],
    );

    const syntax = await tern.waitFor((r) => r.type === 'Rejection' && r.recipient === 'nodomain');
    assert.deepEqual([syntax.command, syntax.reason, syntax.sender, syntax.response], ['RCPT', 'syntax', 'app@client.test', { code: 501, enhanced_code: '5.1.3', content: 'Error: Bad recipient address syntax' }]);
    const bad = await tern.waitFor((r) => r.type === 'Rejection' && r.recipient === 'postmaster');
    assert.deepEqual([bad.command, bad.reason, bad.sender, (bad.response as { code: number }).code], ['RCPT', 'bad_recipient', 'app@client.test', 553]);

    const big = await tern.waitFor((r) => r.type === 'Rejection' && r.command === 'END-OF-MESSAGE');
    assert.deepEqual([big.reason, big.sender, big.recipients, (big.response as { code: number }).code], ['message_size', 'app@client.test', ['big@good.test'], 552]);
    assert.equal(typeof big.message_id, 'string');

    // One record per refusal.
    for (const pred of [(r: LogRecord) => r.recipient === 'victim@good.test', (r: LogRecord) => r.sender === 'big@outsider.test', (r: LogRecord) => r.recipient === 'nodomain', (r: LogRecord) => r.recipient === 'postmaster']) {
      assert.equal(rejections(pred).length, 1);
    }
  });

  it('closes a connection with 421 4.7.0 past hard_error_limit', async () => {
    const smtp = await RawSmtp.open(tern.port, '127.0.0.1', '127.0.0.10');
    await smtp.command('EHLO outsider.test');
    await smtp.command('MAIL FROM:<persistent@outsider.test>');
    for (let i = 0; i < 5; i++) assert.match(await smtp.command(`RCPT TO:<r${i}@good.test>`), /^550 5\.7\.1 /);
    assert.match(await smtp.command('RCPT TO:<r5@good.test>'), /^421 4\.7\.0 /);
    assert.equal(await smtp.reply(), '', 'the connection is closed');
    smtp.close();
    const limit = await tern.waitFor((r) => r.type === 'Rejection' && r.reason === 'error_limit');
    assert.deepEqual([limit.command, limit.recipient, (limit.client as { address: string }).address], ['RCPT', 'r5@good.test', '127.0.0.10']);
  });

  it('counts refusals by reason in tern_rejections_total', async () => {
    await tern.waitFor((r) => r.type === 'Rejection' && r.reason === 'error_limit');
    const metrics = await (await fetch(`${tern.api}/metrics`)).text();
    const logged = (reason: string) => rejections((r) => r.reason === reason).length;
    for (const reason of ['auth_failed', 'auth_locked', 'auth_limit', 'relay_denied', 'message_size', 'bad_recipient', 'syntax', 'error_limit']) {
      assert.ok(logged(reason) > 0, reason);
      assert.equal(sample(metrics, 'tern_rejections_total', `reason="${reason}"`), logged(reason), reason);
    }
  });
});
