import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { World } from '../helpers/world.js';
import type { TernProcess } from '../helpers/tern-process.js';
import { hashPassword } from '../../src/listener/index.js';

// swaks is the operator's SMTP test client; .ci/run installs it (Debian package swaks).
function swaks(args: string[]) {
  const res = spawnSync('swaks', ['--silent', '1', ...args], { encoding: 'utf8', timeout: 20000 });
  if (res.error) throw res.error;
  return res;
}

describe('sending with swaks', () => {
  let world: World;
  let tern: TernProcess;

  before(async () => {
    world = await new World({ tls: '127.0.0.22', dead: '127.0.0.23', plain: '127.0.0.24' }).start();
    tern = await world.tern({
      files: {
        relay_acl_allow: '127.0.0.1/32\n',
        auth_users: `ops:${await hashPassword('hunter2hunter2')}\n`,
        'tls_key.pem': world.cert.key,
        'tls_cert.pem': world.cert.cert,
      },
    });
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
  });

  it('relays from an allowed network', async () => {
    const res = swaks(['--server', `127.0.0.1:${tern.port}`, '--from', 'ops@client.test', '--to', 'swaks1@good.test', '--header', 'Subject: swaks plain']);
    assert.equal(res.status, 0, res.stderr);
    const d = await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === 'swaks1@good.test');
    assert.equal(d.tls, true);
    assert.match(world.mx.mailbox.at(-1)!.body.toString(), /Subject: swaks plain/);
  });

  it('relays with STARTTLS and AUTH PLAIN from elsewhere, and refuses without AUTH', async () => {
    const ok = swaks(['--server', `127.0.0.1:${tern.port}`, '--local-interface', '127.0.0.9', '--tls', '--auth', 'PLAIN', '--auth-user', 'ops', '--auth-password', 'hunter2hunter2', '--from', 'ops@client.test', '--to', 'swaks2@good.test']);
    assert.equal(ok.status, 0, ok.stderr);
    await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === 'swaks2@good.test');
    const denied = swaks(['--server', `127.0.0.1:${tern.port}`, '--local-interface', '127.0.0.9', '--from', 'x@client.test', '--to', 'swaks3@good.test']);
    assert.notEqual(denied.status, 0);
    assert.match(denied.stdout + denied.stderr, /550 5\.7\.1 Relaying denied/);
  });
});
