import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { RecordingMx } from '../helpers/recording-mx.js';
import { RedisServer } from '../helpers/redis-server.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { REPO_ROOT, TernProcess } from '../helpers/tern-process.js';
import type { LogRecord } from '../helpers/tern-process.js';

const LEASES = 'tern:{sink.test}:leases';

/**
 * Issue #17: three Tern nodes, each with its own config and queue, share limits.ini
 * through one Redis: what the remote server sees is the sum of all nodes.
 */
describe('three nodes and one Redis: limits.ini holds for the cluster', () => {
  let world: World;
  let redis: RedisServer;
  let nodes: TernProcess[] = [];
  const sink = new RecordingMx('127.0.0.143', 0, { dataDelayMs: 10 });
  let sent = 0;

  const redisIni = (i: number) => `[main]\nenabled=true\nurl=${redis.url}\nnode_id=n${i}\nlease_ttl=3\nheartbeat_interval=1\ncommand_timeout=200\n`;
  const startNode = (i: number, queueDir?: string) =>
    world.tern({ outbound: 'idle_timeout=2', files: { 'limits.ini': '[sink.test]\nmax_connections=2\n', 'redis.ini': redisIni(i) } }, queueDir);

  /** `n` messages to `node`, one recipient each, a few connections at a time; their recipients. */
  const send = async (node: TernProcess, n: number): Promise<string[]> => {
    const rcpts = Array.from({ length: n }, () => `r${sent++}@sink.test`);
    for (let i = 0; i < rcpts.length; i += 10) {
      await Promise.all(rcpts.slice(i, i + 10).map((to) => sendMail({ port: node.port, from: 'app@sender.test', to: [to], body: message(to) })));
    }
    return rcpts;
  };
  /** The most sessions open at once among those open at or after `from`. */
  const maxConcurrentSince = (from: number) => {
    const edges = sink.sessions
      .filter((x) => (x.closedAt ?? Infinity) >= from)
      .flatMap((x) => [
        [Math.max(x.openedAt, from), 1],
        [x.closedAt ?? Infinity, -1],
      ])
      .sort((p, q) => p[0] - q[0] || p[1] - q[1]);
    let open = 0;
    let most = 0;
    for (const [, d] of edges) most = Math.max(most, (open += d));
    return most;
  };
  const arrived = () => sink.arrivals.flatMap((a) => a.recipients);
  const waitUntil = async (check: () => boolean | Promise<boolean>, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const cli = (node: TernProcess, ...args: string[]) => spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), ...args, '--api', node.api], { encoding: 'utf8', timeout: 15_000 });

  before(async () => {
    world = await new World({ tls: '127.0.0.140', dead: '127.0.0.141', plain: '127.0.0.142' }).start();
    redis = await RedisServer.start();
    sink.port = world.port;
    await sink.start();
    world.dns.add('sink.test', { type: 'MX', preference: 10, exchange: 'mx.sink.test' }).add('mx.sink.test', { type: 'A', data: sink.host });
    nodes = await Promise.all([0, 1, 2].map((i) => startNode(i)));
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await sink.stop();
    await redis.stop();
    await world?.stop();
  });

  it('max_connections=2 over three nodes: never more than 2 sessions at the sink; `tern cluster status` lists the nodes', async () => {
    const rcpts = (await Promise.all(nodes.map((n) => send(n, 100)))).flat();
    await sink.waitForArrivals(rcpts.length, 50_000);
    assert.ok(sink.maxConcurrent() <= 2, `${sink.maxConcurrent()} sessions at once`);
    assert.equal(new Set(arrived()).size, arrived().length, 'no message twice');

    const status = cli(nodes[0], 'cluster', 'status', '--json');
    assert.equal(status.status, 0, status.stderr);
    const body = JSON.parse(status.stdout) as { enabled: boolean; redis: { up: boolean; kind: string; failure_mode: string }; nodes: { id: string; alive: boolean }[] };
    assert.deepEqual(body.redis, { up: true, kind: 'standalone', failure_mode: 'share' });
    assert.deepEqual(body.nodes.filter((n) => n.alive).map((n) => n.id), ['n0', 'n1', 'n2']);
    assert.equal(cli(nodes[1], 'cluster', 'status').status, 0);
  });

  it('`tern cluster status` of a node without redis.ini says so in one line, and exits 0', async () => {
    const alone = await world.tern();
    try {
      const res = cli(alone, 'cluster', 'status');
      assert.equal(res.status, 0, res.stderr);
      assert.equal(res.stdout.trim().split('\n').length, 1);
      assert.match(res.stdout, /redis\.ini is not enabled/);
      assert.deepEqual(JSON.parse(cli(alone, 'cluster', 'status', '--json').stdout), { enabled: false });
    } finally {
      await alone.stop();
    }
  });

  it('Redis killed mid-run (failure_mode=share): mail keeps flowing, no attempt is charged, nothing arrives twice; the nodes return to Redis', async () => {
    const before = sink.arrivals.length;
    const rcpts = (await Promise.all(nodes.map((n) => send(n, 40)))).flat();
    await waitUntil(() => sink.arrivals.length >= before + 10);
    const killedAt = Date.now();
    await redis.kill();
    // Mail keeps flowing through the nodes whose share holds a slot (2 slots over 3 nodes: one has none).
    try {
      await waitUntil(() => nodes.every((n) => n.records.some((r) => r.event === 'redis_down')), 15_000);
      const atDown = sink.arrivals.length;
      await sink.waitForArrivals(Math.min(before + rcpts.length, atDown + 15), 30_000);
    } finally {
      await redis.restart();
    }
    await sink.waitForArrivals(before + rcpts.length, 40_000);
    // Away, each node keeps the sessions Redis granted for a lease TTL and then its share; back
    // empty, the nodes put back the leases of their live sessions before any takes a new one.
    assert.ok(maxConcurrentSince(killedAt) <= 2, `${maxConcurrentSince(killedAt)} sessions at once after Redis was killed`);
    const got = new Set(arrived());
    assert.ok(rcpts.every((r) => got.has(r)), 'every message arrived');
    assert.equal(got.size, arrived().length, 'no message twice');
    const mine = new Set(rcpts);
    const deliveriesNow = () => nodes.flatMap((n) => n.records.filter((r: LogRecord) => r.type === 'Delivery' && mine.has(String(r.recipient))));
    // The sink has them all; the nodes log each delivery once its reply is read.
    await waitUntil(() => deliveriesNow().length >= rcpts.length);
    const deliveries = deliveriesNow();
    assert.equal(deliveries.length, rcpts.length);
    assert.ok(
      deliveries.every((d) => d.attempt === 1),
      'Redis away cost no attempt',
    );
    assert.equal(nodes.flatMap((n) => n.records.filter((r) => r.type === 'TransientFailure')).length, 0);
    await Promise.all(nodes.map((n) => n.waitFor((r) => r.event === 'redis_up' && n.records.indexOf(r) > n.records.findIndex((x) => x.event === 'redis_down'), 20_000)));
  });

  it('a node SIGKILLed while holding leases: the others get its slots within the TTL; its queue, restarted, delivers every acknowledged message', async () => {
    const [a, , victim] = nodes;
    const victimRcpts = await send(victim, 100);
    // The victim alone has mail: it holds both slots (its sessions busy with them).
    await waitUntil(async () => (await redis.cli('ZCARD', LEASES)) === '2' && sink.arrivals.some((x) => victimRcpts.includes(x.recipients[0])));
    const killedAt = Date.now();
    victim.signal('SIGKILL');
    await victim.exited;
    const rcpts = await send(a, 20);
    await waitUntil(() => rcpts.every((r) => arrived().includes(r)), 30_000);
    assert.ok(maxConcurrentSince(killedAt) <= 2, `${maxConcurrentSince(killedAt)} sessions at once`);

    const restarted = await startNode(2, victim.queueDir);
    nodes[2] = restarted;
    await waitUntil(() => victimRcpts.every((r) => arrived().includes(r)), 30_000);
  });
});
