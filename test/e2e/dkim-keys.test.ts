import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { REPO_ROOT, TernProcess, tempQueue, writeConfig } from '../helpers/tern-process.js';
import { makeDkimKey, publishDkimKey, verifyDkim } from '../helpers/dkim.js';

const tern = (...args: string[]) => spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), ...args], { encoding: 'utf8', timeout: 30000 });

/** Key files: what is refused at start and by `tern config check`, and what `tern dkim keygen` makes. */
describe('DKIM keys: config errors and tern dkim keygen', () => {
  let world: World;
  before(async () => {
    world = await new World({ tls: '127.0.0.205', dead: '127.0.0.206', plain: '127.0.0.207' }).start();
  });
  after(async () => {
    await world?.stop();
  });

  it('a missing key, an unreadable one and one of the wrong algorithm are config errors naming the file: exit 78 at start, and from config check', () => {
    const rsa = makeDkimKey('rsa-sha256', 1024);
    const dir = writeConfig({
      'rsa.pem': rsa,
      'garbage.pem': 'not a key\n',
      'dkim.ini': ['[a.test]', 'selector=s1', 'key=dkim/nowhere.pem', '[b.test]', 'selector=s1', 'key=rsa.pem', 'algorithm=ed25519-sha256', '[c.test]', 'selector=s1', 'key=garbage.pem', ''].join('\n'),
    });
    const start = tern('start', '--config', dir, '--queue', tempQueue());
    assert.equal(start.status, 78, start.stderr);
    assert.match(start.stderr, /dkim\.ini: \[a\.test\] key="dkim\/nowhere\.pem": .*nowhere\.pem: cannot read the key file \(ENOENT\)/);
    const check = tern('config', 'check', '--config', dir);
    assert.equal(check.status, 78, check.stdout + check.stderr);
    // config check stops at the first problem of a file, as for every file; then fix it and see the next.
    assert.match(check.stdout, /dkim\.ini: \[a\.test\] key=.*nowhere\.pem/);
    writeFileSync(join(dir, 'dkim.ini'), ['[b.test]', 'selector=s1', 'key=rsa.pem', 'algorithm=ed25519-sha256', ''].join('\n'));
    const wrong = tern('config', 'check', '--config', dir);
    assert.equal(wrong.status, 78);
    assert.match(wrong.stdout, /dkim\.ini: \[b\.test\] key="rsa\.pem": .*rsa\.pem: an rsa key, where algorithm=ed25519-sha256 needs an ed25519 key/);
    writeFileSync(join(dir, 'dkim.ini'), ['[c.test]', 'selector=s1', 'key=garbage.pem', ''].join('\n'));
    const garbage = tern('config', 'check', '--config', dir);
    assert.equal(garbage.status, 78);
    assert.match(garbage.stdout, /dkim\.ini: \[c\.test\] key="garbage\.pem": .*garbage\.pem: not a private key/);
  });

  for (const algorithm of ['ed25519-sha256', 'rsa-sha256'] as const) {
    it(`tern dkim keygen (${algorithm}) writes a 0600 key, refuses to overwrite it, and its TXT record verifies a signature made with it`, { timeout: 90000 }, async () => {
      const dir = writeConfig(world.configFiles());
      const sel = algorithm === 'rsa-sha256' ? 'rsa1' : 'ed1';
      const args = ['dkim', 'keygen', '--config', dir, '--domain', 'keygen.test', '--selector', sel, '--algorithm', algorithm, '--json'];
      const res = tern(...args);
      assert.equal(res.status, 0, res.stderr);
      const out = JSON.parse(res.stdout) as { key_file: string; record: { name: string; type: string; value: string }; dkim_ini: string };
      assert.equal(out.key_file, join(dir, `dkim/keygen.test.${sel}.pem`));
      assert.equal(statSync(out.key_file).mode & 0o777, 0o600);
      assert.equal(out.record.name, `${sel}._domainkey.keygen.test`);
      assert.match(out.record.value, algorithm === 'rsa-sha256' ? /^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]{300,}$/ : /^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
      const key = readFileSync(out.key_file);
      const again = tern(...args);
      assert.equal(again.status, 1, 'an existing key is not overwritten');
      assert.deepEqual(readFileSync(out.key_file), key);
      const human = tern('dkim', 'keygen', '--config', dir, '--domain', 'keygen.test', '--selector', `${sel}b`, '--algorithm', algorithm);
      assert.equal(human.status, 0);
      assert.match(human.stdout, new RegExp(`${sel}b\\._domainkey\\.keygen\\.test\\. IN TXT \\( "v=DKIM1; k=`));

      // Publish what keygen printed, add the section it printed, and send.
      world.dns.add(out.record.name, { type: 'TXT', data: out.record.value });
      writeFileSync(join(dir, 'dkim.ini'), out.dkim_ini);
      const daemon = await new TernProcess(dir, tempQueue()).start();
      try {
        const rcpt = `keygen-${algorithm}@good.test`;
        await sendMail({ port: daemon.port, from: 'app@keygen.test', to: [rcpt], body: message('keygen').replace('sender@client.test', 'app@keygen.test') });
        await daemon.waitFor((r) => r.type === 'Delivery' && r.recipient === rcpt, 30000);
        const mail = world.mx.mailbox.find((m) => m.to.includes(rcpt))!;
        const verdicts = await verifyDkim(mail.body, world.dns);
        assert.deepEqual(verdicts.map((v) => [v.d, v.s, v.a, v.ok]), [['keygen.test', sel, algorithm, true]], JSON.stringify(verdicts));
      } finally {
        await daemon.stop();
      }
    });
  }

  it('sign_by=envelope signs by the MAIL FROM domain, and a [*] section signs any other domain as itself', { timeout: 60000 }, async () => {
    const bounceKey = makeDkimKey('ed25519-sha256');
    const anyKey = makeDkimKey('rsa-sha256');
    publishDkimKey(world.dns, 'bounces.test', 'env', bounceKey);
    publishDkimKey(world.dns, 'whoever.test', 'any', anyKey);
    const daemon = await new TernProcess(
      writeConfig(
        world.configFiles({
          files: {
            'env.pem': bounceKey,
            'any.pem': anyKey,
            'dkim.ini': ['[main]', 'sign_by=envelope', '[bounces.test]', 'selector=env', 'key=env.pem', 'algorithm=ed25519-sha256', '[*]', 'selector=any', 'key=any.pem', ''].join('\n'),
          },
        }),
      ),
      tempQueue(),
    ).start();
    try {
      await sendMail({ port: daemon.port, from: 'vrp@bounces.test', to: ['env1@good.test'], body: message('by envelope') });
      await sendMail({ port: daemon.port, from: 'app@whoever.test', to: ['env2@good.test'], body: message('by default') });
      await daemon.waitFor((r) => r.type === 'Delivery' && r.recipient === 'env1@good.test', 30000);
      await daemon.waitFor((r) => r.type === 'Delivery' && r.recipient === 'env2@good.test', 30000);
      const one = await verifyDkim(world.mx.mailbox.find((m) => m.to.includes('env1@good.test'))!.body, world.dns);
      assert.deepEqual(one.map((v) => [v.d, v.s, v.ok]), [['bounces.test', 'env', true]], JSON.stringify(one));
      const two = await verifyDkim(world.mx.mailbox.find((m) => m.to.includes('env2@good.test'))!.body, world.dns);
      assert.deepEqual(two.map((v) => [v.d, v.s, v.ok]), [['whoever.test', 'any', true]], JSON.stringify(two));
    } finally {
      await daemon.stop();
    }
  });
});
