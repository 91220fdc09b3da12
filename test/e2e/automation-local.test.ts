import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:net';
import { World } from '../helpers/world.js';
import { scriptedServer } from '../helpers/scripted-server.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { REPO_ROOT, TernProcess } from '../helpers/tern-process.js';

const AUTOMATION = `
[microsoft-throttled]
match = ^4\\d\\d 4\\.7\\.\\d+ .*throttl
mx = *.throttle.test
threshold = 2
window = 10m
action = override
max_connections = 1
max_message_rate = 1/min
duration = 90m
`;

/** Issue #17: automation.ini works on a single node without Redis (counted locally), and its override holds through a restart. */
describe('automation on one node, without Redis', () => {
  let world: World;
  let tern: TernProcess;
  let throttling: Server;
  const sessions: string[] = [];

  const cli = (...args: string[]) => {
    const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), ...args, '--api', tern.api], { encoding: 'utf8', timeout: 15000 });
    return { code: res.status, out: res.stdout, err: res.stderr };
  };

  before(async () => {
    world = await new World({ tls: '127.0.0.156', dead: '127.0.0.157', plain: '127.0.0.158' }).start();
    // A provider that throttles at RCPT (451 4.7.500 … throttled), as Microsoft's servers do.
    throttling = await scriptedServer('127.0.0.159', world.port, '220 mx.throttle.test ESMTP', (socket) => {
      sessions.push('open');
      return (line) => {
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') socket.write('250 mx.throttle.test\r\n');
        else if (verb === 'MAIL') socket.write('250 2.1.0 Ok\r\n');
        else if (verb === 'RCPT') socket.write('451 4.7.500 Server busy. Please try again later; you are throttled\r\n');
        else if (verb === 'QUIT') socket.end('221 2.0.0 Bye\r\n');
        else socket.write('503 5.5.1 Bad sequence\r\n');
      };
    });
    for (const tenant of ['contoso', 'fabrikam']) {
      world.dns.add(`${tenant}.test`, { type: 'MX', preference: 10, exchange: `${tenant}-test.throttle.test` }).add(`${tenant}-test.throttle.test`, { type: 'A', data: '127.0.0.159' });
    }
    tern = await world.tern({ files: { 'automation.ini': AUTOMATION } });
  });
  after(async () => {
    await tern?.stop();
    await new Promise((r) => throttling?.close(r));
    await world?.stop();
  });

  it('two throttled replies from hosts under one mx pattern fire the override once, logged and listed, and it holds through a restart', async () => {
    await sendMail({ port: tern.port, from: 'app@client.test', to: ['a@contoso.test'], body: message('contoso') });
    await sendMail({ port: tern.port, from: 'app@client.test', to: ['b@fabrikam.test'], body: message('fabrikam') });
    const fired = await tern.waitFor((r) => r.event === 'automation_fired', 20_000);
    assert.equal(fired.rule, 'microsoft-throttled');
    assert.equal(fired.destination, 'mx:*.throttle.test');
    assert.equal(fired.action, 'override');
    assert.equal(fired.max_connections, 1);
    assert.equal(fired.max_message_rate, '1/min');
    assert.equal(fired.code, 451);
    assert.equal(fired.enhanced, '4.7.500');
    assert.equal(fired.counted, 'local');
    assert.equal(fired.duration_ms, 90 * 60_000);

    const listed = JSON.parse(cli('domain', 'ls', '--json').out) as { overrides: { destination: string; max_connections: number; max_message_rate: string; rule: string }[] };
    assert.equal(listed.overrides.length, 1);
    assert.deepEqual(
      { ...listed.overrides[0], since: undefined, until: undefined },
      { destination: 'mx:*.throttle.test', max_connections: 1, max_message_rate: '1/min', reason: 'automation rule microsoft-throttled', rule: 'microsoft-throttled', since: undefined, until: undefined },
    );
    const human = cli('domain', 'ls').out;
    assert.match(human, /\nOVERRIDE +MAX CONN +MAX RATE +UNTIL +REASON +RULE\nmx:\*\.throttle\.test +1 +1\/min +\d{4}-[^ ]+ \(in 1h\d+m\d*s?\) +automation rule microsoft-throttled +microsoft-throttled\n/);
    assert.ok(existsSync(join(tern.queueDir, 'overrides.json')));
    assert.equal((JSON.parse(readFileSync(join(tern.queueDir, 'overrides.json'), 'utf8')) as { overrides: unknown[] }).overrides.length, 1);

    // The retries of both entries follow: the rule does not fire again while its override lasts.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(tern.records.filter((r) => r.event === 'automation_fired').length, 1);

    assert.equal((await tern.stop()).code, 0);
    tern = await new TernProcess(tern.configDir, tern.queueDir).start();
    const again = JSON.parse(cli('domain', 'ls', '--json').out) as { overrides: { destination: string; rule: string }[] };
    assert.deepEqual(again.overrides.map((o) => [o.destination, o.rule]), [['mx:*.throttle.test', 'microsoft-throttled']]);
    const cleared = cli('domain', 'clear', 'mx:*.throttle.test');
    assert.equal(cleared.code, 0, cleared.err);
    assert.deepEqual((JSON.parse(cli('domain', 'ls', '--json').out) as { overrides: unknown[] }).overrides, []);
  });

  it('refuses an override without a limit or a duration, from the CLI and the API', async () => {
    assert.equal(cli('domain', 'override', 'contoso.test', '--duration', '1h').code, 2);
    assert.equal(cli('domain', 'override', 'contoso.test', '--max-connections', '1').code, 2);
    assert.equal(cli('domain', 'override', 'not a domain', '--max-connections', '1', '--duration', '1h').code, 2);
    const api = await fetch(`${tern.api}/domains/contoso.test/override?duration=60`, { method: 'POST' });
    assert.equal(api.status, 400);
    const rate = await fetch(`${tern.api}/domains/contoso.test/override?duration=60&max_message_rate=fast`, { method: 'POST' });
    assert.equal(rate.status, 400);
  });
});
