import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Server } from 'node:net';
import { World } from '../helpers/world.js';
import { RecordingMx } from '../helpers/recording-mx.js';
import { RedisServer } from '../helpers/redis-server.js';
import { scriptedServer } from '../helpers/scripted-server.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { REPO_ROOT, is } from '../helpers/tern-process.js';
import type { TernProcess } from '../helpers/tern-process.js';

const AUTOMATION = `
[yahoo-ts04]
match = \\[TS04\\]
domains = ts04.test
threshold = 2
window = 10m
action = suspend
duration = 2h
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Listing {
  suspended: string[];
  suspensions: { domain: string; reason: string; until: string | null; rule: string | null }[];
  overrides: { destination: string; max_connections: number | null; until: string; rule: string | null }[];
}

/**
 * Issue #17: three Tern nodes, each with its own queue and config, share suspensions,
 * overrides and automation through one Redis; the third runs two workers (nodes=2).
 */
describe('cluster-wide policy: three nodes on one Redis', () => {
  let world: World;
  let redis: RedisServer;
  let ts04: Server;
  const nodes: TernProcess[] = [];
  const ok = new RecordingMx('127.0.0.198');
  const slow = new RecordingMx('127.0.0.155', 0, { dataDelayMs: 300 });

  const cli = (node: TernProcess, ...args: string[]) => {
    const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), ...args, '--api', node.api], { encoding: 'utf8', timeout: 15000 });
    return { code: res.status, out: res.stdout, err: res.stderr, json: () => JSON.parse(res.stdout) as Listing };
  };
  // Polled through the API (what `tern domain ls --json` prints), without a CLI process per poll.
  const listing = async (node: TernProcess) => (await (await fetch(`${node.api}/domains/suspended`)).json()) as Listing;
  const seen = async (node: TernProcess, check: (l: Listing) => boolean, what: string) => {
    for (let i = 0; i < 200; i++) {
      if (check(await listing(node))) return;
      await sleep(50);
    }
    assert.fail(`node ${node.api}: ${what}`);
  };
  const arrivedFor = (sink: RecordingMx, rcpt: string) => sink.arrivals.some((a) => a.recipients.includes(rcpt));

  before(async () => {
    redis = await RedisServer.start();
    world = await new World({ tls: '127.0.0.195', dead: '127.0.0.196', plain: '127.0.0.197' }).start();
    for (const [name, sink] of [['ok', ok], ['slow', slow]] as const) {
      sink.port = world.port;
      await sink.start();
      world.dns.add(`${name}.test`, { type: 'MX', preference: 10, exchange: `mx.${name}.test` }).add(`mx.${name}.test`, { type: 'A', data: sink.host });
    }
    // "[TS04]" deferrals of each recipient. Not at the greeting: a server refusing every
    // session is down for the cluster, and then only the one node that probes it hears it
    // (shared destination health), while this test wants two nodes to each hear a match.
    ts04 = await scriptedServer('127.0.0.199', world.port, '220 mx.ts04.test ESMTP', (socket) => (line) => {
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO' || verb === 'HELO') socket.write('250 mx.ts04.test\r\n');
      else if (verb === 'MAIL') socket.write('250 2.1.0 ok\r\n');
      else if (verb === 'RCPT') socket.write('451 4.7.0 [TS04] Messages from 127.0.0.1 temporarily deferred due to unexpected volume\r\n');
      else if (verb === 'QUIT') socket.end('221 2.0.0 bye\r\n');
      else socket.write('503 5.5.1 no\r\n');
    });
    world.dns.add('ts04.test', { type: 'MX', preference: 10, exchange: 'mx.ts04.test' }).add('mx.ts04.test', { type: 'A', data: '127.0.0.199' });
    // Node C runs two workers (smtp.ini nodes=2): each is a Redis node of its own, named by host and shard.
    const started = ['a', 'b', 'c'].map((id) => {
      const named = id === 'c' ? '' : `node_id=${id}\n`;
      return world.tern({ smtp: id === 'c' ? 'nodes=2' : '', files: { 'redis.ini': `[main]\nenabled=true\nurl=${redis.url}\nkey_prefix=e2e:\n${named}`, 'automation.ini': AUTOMATION } });
    });
    nodes.push(...(await Promise.all(started)));
    await Promise.all(nodes.map((n) => n.waitFor((r) => r.event === 'redis_up')));
    await nodes[2].waitFor((r) => r.event === 'redis_up' && r.shard === 1);
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await Promise.all([ok.stop(), slow.stop(), new Promise((r) => ts04?.close(r))]);
    await world?.stop();
    await redis?.stop();
  });

  it('a suspension on node A parks the domain on node B; resume on B lets A deliver', async () => {
    const [a, b] = nodes;
    const res = cli(a, 'domain', 'suspend', 'ok.test', '--duration', '10m', '--reason', 'x');
    assert.equal(res.code, 0, res.err);
    await seen(b, (l) => l.suspensions.some((s) => s.domain === 'ok.test' && s.reason === 'x' && s.until !== null), 'B lists the suspension');
    await sendMail({ port: b.port, from: 'app@client.test', to: ['parked@ok.test'], body: message('parked') });
    await sendMail({ port: a.port, from: 'app@client.test', to: ['waits@ok.test'], body: message('waits') });
    await b.waitFor((r) => r.type === 'Reception' && (r.recipients as string[]).includes('parked@ok.test'));
    await a.waitFor((r) => r.type === 'Reception' && (r.recipients as string[]).includes('waits@ok.test'));
    await sleep(500);
    assert.equal(arrivedFor(ok, 'parked@ok.test') || arrivedFor(ok, 'waits@ok.test'), false, 'nothing reaches the sink while suspended');
    assert.equal(cli(b, 'domain', 'resume', 'ok.test').code, 0);
    await a.waitFor(is('Delivery', 'waits@ok.test'));
    await b.waitFor(is('Delivery', 'parked@ok.test'));
    for (const n of nodes) await seen(n, (l) => !l.suspended.includes('ok.test'), 'resumed everywhere');
  });

  it('an override set on node A holds node B to one session at the sink', async () => {
    const [a, b, c] = nodes;
    const res = cli(a, 'domain', 'override', 'slow.test', '--max-connections', '1', '--duration', '10m', '--reason', 'one at a time');
    assert.equal(res.code, 0, res.err);
    assert.match(res.out, /^overridden slow\.test: max_connections=1 max_message_rate=- until \d{4}-/);
    await seen(b, (l) => l.overrides.some((o) => o.destination === 'slow.test' && o.max_connections === 1), 'B lists the override');
    for (let i = 1; i <= 4; i++) await sendMail({ port: b.port, from: 'app@client.test', to: [`r${i}@slow.test`], body: message(`slow-${i}`) });
    await slow.waitForArrivals(4);
    assert.equal(slow.maxConcurrent(), 1, 'one session at a time');
    assert.equal(cli(c, 'domain', 'clear', 'slow.test').code, 0);
    for (const n of nodes) await seen(n, (l) => l.overrides.length === 0, 'cleared everywhere');
  });

  it('a reply that matches an automation rule on two nodes fires it once cluster-wide; every node lists the suspension with the rule', async () => {
    const [a, b] = nodes;
    await sendMail({ port: a.port, from: 'app@client.test', to: ['one@ts04.test'], body: message('ts04-a') });
    await sendMail({ port: b.port, from: 'app@client.test', to: ['two@ts04.test'], body: message('ts04-b') });
    // Whichever node's match crossed the threshold logs the firing.
    const fired = () => nodes.flatMap((n) => n.records.filter((r) => r.event === 'automation_fired'));
    for (let i = 0; i < 400 && fired().length === 0; i++) await sleep(50);
    const [firing] = fired();
    assert.ok(firing, 'the rule fired');
    assert.equal(firing.rule, 'yahoo-ts04');
    assert.equal(firing.destination, 'ts04.test');
    assert.equal(firing.action, 'suspend');
    assert.equal(firing.code, 451);
    assert.equal(firing.enhanced, '4.7.0');
    assert.equal(firing.matches, 2);
    assert.match(String(firing.reply), /^451 4\.7\.0 \[TS04\]/);
    for (const n of nodes) await seen(n, (l) => l.suspensions.some((s) => s.domain === 'ts04.test' && s.rule === 'yahoo-ts04'), 'the rule’s suspension is listed');
    const human = cli(nodes[2], 'domain', 'ls').out;
    assert.match(human, /^DOMAIN +UNTIL +REASON +RULE\n/);
    assert.match(human, /\nts04\.test +\d{4}-\d\d-\d\dT[\d:.]+Z \(in 1h5\dm\d*s?\) +automation rule yahoo-ts04 +yahoo-ts04\n/);
    // Retries meanwhile are parked or blocked by the fired-marker: the rule fired once.
    await sleep(1500);
    assert.equal(fired().length, 1);
    assert.equal(cli(a, 'domain', 'resume', 'ts04.test').code, 0);
  });
});
