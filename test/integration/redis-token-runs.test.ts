import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RedisCoordinator, RedisLink } from '../../src/cluster/index.js';
import type { DestinationLimits } from '../../src/cluster/index.js';
import { ACQUIRE_LUA, leasesKey, rateKey } from '../../src/cluster/redis-scripts.js';
import { redisMainSchema } from '../../src/config/index.js';
import { systemClock } from '../../src/core/index.js';
import { recordingLogger } from '../helpers/recording-logger.js';
import { RedisServer } from '../helpers/redis-server.js';

/**
 * What a busy destination costs Redis (issue 17: ≤ 0.2 commands per message at 1,000/s) and
 * how the nodes share its time: runs of tokens short enough that the nodes interleave, an
 * expiry set now and then rather than at every grant, leases granted in few commands.
 */

interface Node {
  readonly link: RedisLink;
  readonly coordinator: RedisCoordinator;
}

const settingsOf = (url: string) => redisMainSchema.parse({ enabled: 'true', url, command_timeout: '200', key_prefix: 'runs:', lease_ttl: '3', heartbeat_interval: '1' });

async function linkTo(url: string, id: string): Promise<RedisLink> {
  const link = new RedisLink({ settings: settingsOf(url), nodeId: id, logger: recordingLogger().logger });
  assert.equal(await link.ready(10_000), true);
  return link;
}

async function node(url: string, id: string): Promise<Node> {
  const link = await linkTo(url, id);
  const coordinator = new RedisCoordinator({ link, settings: settingsOf(url), clock: systemClock, logger: recordingLogger().logger, counts: () => ({ queued: 0, in_flight: 0, sessions: 0 }), version: 'test' });
  return { link, coordinator };
}

async function closeAll(nodes: readonly Node[]): Promise<void> {
  for (const n of nodes) {
    await n.coordinator.close();
    await n.link.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Every node takes tokens one at a time, as the shaper does, until `total` were handed out
 * over all of them; `seen` is called after each answer (it may look at Redis).
 */
async function drain(nodes: readonly Node[], key: string, limits: DestinationLimits, total: number, seen?: (n: Node) => Promise<void>): Promise<number> {
  let handed = 0;
  await Promise.all(
    nodes.map(async (n) => {
      while (handed < total) {
        const answer = await n.coordinator.takeTokens(key, limits, 1);
        handed += answer.granted;
        await seen?.(n);
        if (answer.granted === 0) await sleep(Math.max(1, (answer.retryAt ?? Date.now() + 5) - Date.now()));
      }
    }),
  );
  return handed;
}

/** The tokens a node's last grant reserved, as the script recorded it (`c:<node>`: id:granted:first:end). */
async function lastGrant(n: Node, key: string): Promise<number> {
  const field = await n.link.call('probe', (c) => c.hget(rateKey(n.link, key), `c:${n.link.nodeId}`));
  return field ? Number(field.split(':')[1]) : 0;
}

async function calls(redis: RedisServer): Promise<Map<string, number>> {
  return redis.commandCalls();
}

function delta(before: Map<string, number>, after: Map<string, number>, ...names: string[]): number {
  return names.reduce((sum, name) => sum + (after.get(name) ?? 0) - (before.get(name) ?? 0), 0);
}

describe('Redis tokens: runs, expiry and commands of a busy destination', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    await redis.stop();
  });

  test('at 1,000/s a busy node reserves at most a quarter second of admission tokens, and a tenth of a second of wire turns, per call: the other nodes get their turns', async () => {
    const nodes = [await node(redis.url, 'a'), await node(redis.url, 'b'), await node(redis.url, 'c')];
    const rate = { count: 1000, perMs: 1000, burst: 10 };
    try {
      for (const [key, limits, most] of [
        ['runs.test', { maxConnections: 10, rate }, 250],
        // The wire pacer's line takes no slot: max_connections 0.
        ['runs.test#wire', { maxConnections: 0, rate }, 100],
      ] as const) {
        let largest = 0;
        const handed = await drain(nodes, key, limits, 2000, async (n) => {
          largest = Math.max(largest, await lastGrant(n, key));
        });
        assert.ok(largest > 0, 'the nodes took their tokens from Redis');
        assert.ok(largest <= most, `${key}: a grant of ${largest} tokens at 1,000/s (at most ${most})`);
        assert.ok(handed >= 2000);
      }
    } finally {
      await closeAll(nodes);
    }
  });

  test('a busy destination costs few commands per token: its key gets an expiry now and then, not at every grant, and keeps one', async () => {
    const nodes = [await node(redis.url, 'a'), await node(redis.url, 'b'), await node(redis.url, 'c')];
    const limits: DestinationLimits = { maxConnections: 10, rate: { count: 1000, perMs: 1000, burst: 10 } };
    try {
      const before = await calls(redis);
      const handed = await drain(nodes, 'cost.test', limits, 3000);
      const after = await calls(redis);
      // Heartbeats set no expiry (SET PX): every PEXPIRE here is a grant's.
      assert.ok(delta(before, after, 'pexpire') <= 2, `${delta(before, after, 'pexpire')} PEXPIRE for one destination's grants`);
      const grants = delta(before, after, 'hmget');
      assert.ok(grants > 0 && grants / handed <= 0.05, `${grants} grants for ${handed} tokens`);
      // A grant is EVALSHA, HMGET, TIME and HSET; the heartbeats of three nodes come on top.
      const tokenCommands = delta(before, after, 'hmget', 'hset', 'pexpire') + 2 * grants;
      assert.ok(tokenCommands / handed <= 0.2, `${tokenCommands} commands for ${handed} tokens`);
      const ttl = Number(await redis.cli('PTTL', rateKey(nodes[0].link, 'cost.test')));
      assert.ok(ttl > 60_000, `the rate key expires in ${ttl} ms: it outlives its call ids (30 s) whatever the TAT`);
    } finally {
      await closeAll(nodes);
    }
  });

  test('a lease granted below the limit costs Redis five commands; a full destination still makes room of an expired lease', async () => {
    const link = await linkTo(redis.url, 'l');
    try {
      const key = leasesKey(link, 'lease-cost.test');
      const before = await calls(redis);
      for (let i = 0; i < 10; i++) assert.deepEqual(await link.script('acquire', ACQUIRE_LUA, [key], [`l-${i}`, 20, 3_000_000]), [1, 0]);
      const after = await calls(redis);
      const total = [...after].reduce((sum, [name, n]) => sum + (name === 'info' ? 0 : n - (before.get(name) ?? 0)), 0);
      assert.ok(total <= 50, `${total} commands for 10 leases`);
      assert.ok(Number(await redis.cli('PTTL', key)) > 0, 'the leases key expires once no node renews it');

      // max=1: one lease that lapses at once (ttl 1 µs) leaves its room to the next.
      const full = leasesKey(link, 'lease-room.test');
      assert.deepEqual(await link.script('acquire', ACQUIRE_LUA, [full], ['gone', 1, 1]), [1, 0]);
      await sleep(5);
      assert.deepEqual(await link.script('acquire', ACQUIRE_LUA, [full], ['next', 1, 3_000_000]), [1, 0]);
      const refused = (await link.script('acquire', ACQUIRE_LUA, [full], ['third', 1, 3_000_000])) as number[];
      assert.equal(refused[0], 0, 'full: refused');
      assert.deepEqual(await link.script('acquire', ACQUIRE_LUA, [full], ['next', 1, 3_000_000]), [1, 0], 'the same lease id acquires again (renewed), full or not');
      assert.equal(await redis.cli('ZCARD', full), '1');
    } finally {
      await link.close();
    }
  });
});
