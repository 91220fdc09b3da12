import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { REPO_ROOT, TernProcess, is } from '../helpers/tern-process.js';

const TOKEN = 'suspend-token-0123456789abcdef';

describe('domain suspensions: duration, reason, restart, expiry', () => {
  let world: World;
  let tern: TernProcess;

  const cli = (...args: string[]) => {
    const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), ...args, '--api', tern.api, '--token', TOKEN], { encoding: 'utf8', timeout: 15000 });
    return { code: res.status, out: res.stdout, err: res.stderr, json: () => JSON.parse(res.stdout) };
  };
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

  before(async () => {
    world = await new World({ tls: '127.0.0.122', dead: '127.0.0.123', plain: '127.0.0.124' }).start();
    tern = await world.tern({ files: { 'http.ini': `listen=127.0.0.1:0\ntoken=${TOKEN}\n` } });
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
  });

  it('refuses names that are not domains, from the CLI and from the API', async () => {
    for (const name of ['foo bar', '../x', '', `${'a'.repeat(60)}.`.repeat(5) + 'test', 'a..b']) {
      const res = cli('domain', 'suspend', name);
      assert.equal(res.code, 2, `${JSON.stringify(name)}: ${res.out}`);
      assert.match(res.err, /is not a domain name/);
    }
    const api = await fetch(`${tern.api}/domains/${encodeURIComponent('foo bar')}/suspend`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(api.status, 400);
    assert.deepEqual(cli('domain', 'ls', '--json').json().suspended, []);
    assert.equal(cli('domain', 'suspend', 'good.test', '--duration', 'soon').code, 2);
  });

  it('lifts a suspension with a duration by itself: the entries held become due', async () => {
    const res = cli('domain', 'suspend', 'implicit.test', '--duration', '4s', '--reason', 'short pause');
    assert.equal(res.code, 0, res.err);
    assert.match(res.out, /^suspended implicit\.test until \d{4}-\d\d-\d\dT/);
    const [listed] = cli('domain', 'ls', '--json').json().suspensions;
    assert.equal(listed.domain, 'implicit.test');
    assert.equal(listed.reason, 'short pause');
    assert.ok(listed.until, 'an expiry is listed');
    await sendMail({ port: tern.port, from: 'app@client.test', to: ['timed@implicit.test'], body: message('timed') });
    await tern.waitFor((r) => r.type === 'Reception' && (r.recipients as string[]).includes('timed@implicit.test'));
    await pause(500);
    assert.equal(tern.dispositions('Delivery').filter((r) => r.recipient === 'timed@implicit.test').length, 0, 'held while suspended');
    await tern.waitFor((r) => r.msg === 'domain suspension expired; delivery resumed' && r.domain === 'implicit.test');
    await tern.waitFor(is('Delivery', 'timed@implicit.test'));
    assert.deepEqual(cli('domain', 'ls', '--json').json().suspended, []);
  });

  it('keeps suspensions, with their reason and expiry, across a restart', async () => {
    assert.equal(cli('domain', 'suspend', 'other.test', '--reason', 'migrating the mail store').code, 0);
    assert.equal(cli('domain', 'suspend', 'good.test', '--duration', '2h', '--reason', 'asked by the provider').code, 0);
    await sendMail({ port: tern.port, from: 'app@client.test', to: ['kept@other.test'], body: message('kept') });
    await tern.waitFor((r) => r.type === 'Reception' && (r.recipients as string[]).includes('kept@other.test'));
    assert.equal(existsSync(join(tern.queueDir, 'suspensions.json')), true);

    assert.equal((await tern.stop()).code, 0);
    tern = await new TernProcess(tern.configDir, tern.queueDir).start();
    await tern.waitFor((r) => r.msg === 'queue recovered');

    const list = cli('domain', 'ls', '--json').json();
    assert.deepEqual(list.suspended, ['good.test', 'other.test']);
    const [good, other] = list.suspensions;
    assert.equal(good.reason, 'asked by the provider');
    assert.ok(Date.parse(good.until) > Date.now() + 3600_000, 'two hours from the suspend, not from the restart');
    assert.equal(other.reason, 'migrating the mail store');
    assert.equal(other.until, null);
    const human = cli('domain', 'ls');
    assert.match(human.out, /^DOMAIN +UNTIL +REASON\n/);
    assert.match(human.out, /\ngood\.test +\d{4}-\d\d-\d\dT[\d:.]+Z \(in 1h\d+m\) +asked by the provider\n/);
    assert.match(human.out, /\nother\.test +until resumed +migrating the mail store\n/);

    await pause(500);
    assert.equal(tern.dispositions('Delivery').filter((r) => r.recipient === 'kept@other.test').length, 0, 'still suspended after the restart');
    assert.match(cli('domain', 'resume', 'other.test').out, /^resumed \(1 entries due again\) other\.test\n$/);
    await tern.waitFor(is('Delivery', 'kept@other.test'));
    assert.equal(cli('domain', 'resume', 'good.test').code, 0);
    assert.deepEqual(cli('domain', 'ls', '--json').json().suspended, []);
  });
});
