import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:net';
import { World } from '../helpers/world.js';
import { scriptedServer } from '../helpers/scripted-server.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { is } from '../helpers/tern-process.js';
import type { TernProcess } from '../helpers/tern-process.js';

/**
 * The most backtracking-prone patterns automation.ini still accepts: two long quantifiers
 * (O(n³) on a run of what they match), one long with short ones whose choices multiply to
 * the limit (512 × 128), and ranges. Each fails on a run of `a` without `!` (or `b`), in
 * 0.1–0.2 s on the event loop (measured): in the match worker each overruns its bound, is
 * cut off and counts as not matched, and the rule after it still answers.
 */
const AUTOMATION = `
[slow-long]
match = a*a*!
threshold = 1
window = 10m
action = suspend
duration = 1h

[slow-short]
match = a*a?a?a?a?a?a?a?!
threshold = 1
window = 10m
action = suspend
duration = 1h

[slow-ranges]
match = a{0,15}a{0,7}a*!
threshold = 1
window = 10m
action = suspend
duration = 1h

[slow-b]
match = a*a*b
threshold = 1
window = 10m
action = suspend
duration = 1h

[hostile-451]
match = ^451 4\\.7\\.1 a{16}
domains = h1.test
threshold = 2
window = 10m
action = suspend
duration = 1h
`;

/** 1 KiB of what the patterns match, with nothing that ends them: every rule backtracks through all it may. */
const HOSTILE = `451 4.7.1 ${'a'.repeat(1024)}`;

/** Issue #17: a server that crafts its replies against the configured rules does not stop the daemon answering. */
describe('automation matching a hostile reply', () => {
  let world: World;
  let tern: TernProcess;
  let hostile: Server;
  let rcpts = 0;

  before(async () => {
    world = await new World({ tls: '127.0.0.135', dead: '127.0.0.136', plain: '127.0.0.137' }).start();
    hostile = await scriptedServer('127.0.0.138', world.port, '220 mx.hostile.test ESMTP', (socket) => (line) => {
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO' || verb === 'HELO') socket.write('250 mx.hostile.test\r\n');
      else if (verb === 'MAIL') socket.write('250 2.1.0 Ok\r\n');
      else if (verb === 'RCPT') {
        rcpts++;
        socket.write(`${HOSTILE}\r\n`);
      } else if (verb === 'QUIT') socket.end('221 2.0.0 Bye\r\n');
      else socket.write('503 5.5.1 Bad sequence\r\n');
    });
    for (const d of ['h1', 'h2', 'h3', 'h4']) world.dns.add(`${d}.test`, { type: 'MX', preference: 10, exchange: 'mx.hostile.test' });
    world.dns.add('mx.hostile.test', { type: 'A', data: '127.0.0.138' });
    // The daemon starts: these patterns are accepted.
    tern = await world.tern({ files: { 'automation.ini': AUTOMATION } });
  });
  after(async () => {
    await tern?.stop();
    await new Promise((r) => hostile?.close(r));
    await world?.stop();
  });

  it('while mail flows to the hostile MX, another client\'s transaction completes, /health answers, a slow rule is cut off by its bound, and the rule that matches fires', async () => {
    // Mail to four domains behind the hostile MX, each retried every second (temp_fail_intervals=1s*3).
    for (const d of ['h1', 'h2', 'h3', 'h4']) {
      const sent = await sendMail({ port: tern.port, from: 'app@client.test', to: [`u1@${d}.test`, `u2@${d}.test`], body: message(d) });
      assert.deepEqual(sent.accepted.length, 2);
    }
    for (let i = 0; i < 400 && rcpts === 0; i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(rcpts > 0, 'the hostile MX is being sent to');
    // Rounds while its replies are matched: each answered in full.
    for (let round = 0; round < 3; round++) {
      const rcpt = `r${round}@good.test`;
      const sent = await sendMail({ port: tern.port, from: 'other@client.test', to: [rcpt], body: message(`round ${round}`) });
      assert.deepEqual(sent.accepted, [rcpt]);
      assert.match(sent.response, /^250 /);
      const health = await fetch(`${tern.api}/health`);
      assert.equal(health.status, 200);
      assert.equal(((await health.json()) as { status: string }).status, 'ok');
      await tern.waitFor(is('Delivery', rcpt), 30_000);
    }
    const timeout = await tern.waitFor((r) => r.event === 'automation_match_timeout', 30_000);
    assert.ok(['slow-long', 'slow-short', 'slow-ranges', 'slow-b'].includes(timeout.rule as string), `a slow rule overran its bound (${String(timeout.rule)})`);
    assert.equal(timeout.level, 'warn');
    const fired = await tern.waitFor((r) => r.event === 'automation_fired', 30_000);
    assert.equal(fired.rule, 'hostile-451');
    assert.equal(fired.domain, 'h1.test');
    assert.equal(fired.code, 451);
    assert.ok(rcpts >= 2, 'mail flowed to the hostile MX throughout');
    assert.equal(tern.records.filter((r) => r.event === 'automation_fired').length, 1, 'no slow rule matched');
  });
});
