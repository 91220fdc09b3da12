import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { RedisCoordinator, RedisLink } from '../../src/cluster/index.js';
import type { DestinationLimits } from '../../src/cluster/index.js';
import { ACQUIRE_LUA, GRANT_LUA, RENEW_LUA, leasesKey, rateKey } from '../../src/cluster/redis-scripts.js';
import { slotShare } from '../../src/cluster/local-share.js';
import { redisMainSchema } from '../../src/config/index.js';
import { systemClock } from '../../src/core/index.js';
import { createLogger } from '../../src/log/index.js';
import { RedisCluster, RedisServer } from '../helpers/redis-server.js';

const quiet = () =>
  createLogger({
    destination: new Writable({ write: (_c, _e, cb) => cb() }) as never,
  });

interface Node {
  readonly link: RedisLink;
  readonly coordinator: RedisCoordinator;
  readonly freed: string[];
}

/** One Tern node's coordination against `url`: its own link, its own coordinator. */
async function node(where: string | { cluster: string }, id: string, over: Record<string, string> = {}): Promise<Node> {
  const settings = redisMainSchema.parse({ enabled: 'true', ...(typeof where === 'string' ? { url: where } : where), command_timeout: '200', key_prefix: 'it:', lease_ttl: '3', heartbeat_interval: '1', ...over });
  const link = new RedisLink({ settings, nodeId: id, logger: quiet() });
  assert.equal(await link.ready(10_000), true);
  const coordinator = new RedisCoordinator({ link, settings, clock: systemClock, logger: quiet(), counts: () => ({ queued: 0, in_flight: 0, sessions: 0 }), version: 'test' });
  const freed: string[] = [];
  coordinator.onFreed((key) => freed.push(key));
  return { link, coordinator, freed };
}

async function closeAll(nodes: readonly Node[]): Promise<void> {
  for (const n of nodes) {
    await n.coordinator.close();
    await n.link.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(25);
  }
}

/** Takes tokens one at a time, as the shaper does, until `total` were granted over all nodes; each grant's time. */
async function drain(nodes: readonly Node[], key: string, limits: DestinationLimits, total: number): Promise<number[]> {
  const times: number[] = [];
  await Promise.all(
    nodes.map(async (n) => {
      while (times.length < total) {
        const answer = await n.coordinator.takeTokens(key, limits, 1);
        for (let i = 0; i < answer.granted; i++) times.push(Date.now());
        if (answer.granted === 0) await sleep(Math.max(1, (answer.retryAt ?? Date.now() + 5) - Date.now()));
      }
    }),
  );
  return times.sort((a, b) => a - b);
}

/** The most grants in any window of `ms` starting at a grant. */
function busiestWindow(times: readonly number[], ms: number): number {
  let best = 0;
  let j = 0;
  for (let i = 0; i < times.length; i++) {
    while (times[j] < times[i] - ms + 1) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

async function scriptCalls(redis: RedisServer): Promise<number> {
  const calls = await redis.commandCalls();
  return (calls.get('evalsha') ?? 0) + (calls.get('eval') ?? 0) + (calls.get('publish') ?? 0);
}

describe('RedisCoordinator: several nodes against one Redis', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    await redis.stop();
  });

  test('GCRA over 3 nodes: no 1-s window holds more than rate + burst, taken in chunks of few calls', async () => {
    const nodes = [await node(redis.url, 'a'), await node(redis.url, 'b'), await node(redis.url, 'c')];
    try {
      const limits: DestinationLimits = { maxConnections: 10, rate: { count: 200, perMs: 1000, burst: 20 } };
      const before = await scriptCalls(redis);
      const times = await drain(nodes, 'gcra.test', limits, 500);
      const calls = (await scriptCalls(redis)) - before;
      // Timed on this process's clock after each answer (Redis's clock paces them): 2 % for a busy machine's jitter; a bunch of late tokens is far more.
      assert.ok(busiestWindow(times, 1000) <= 200 + 20 + 4, `busiest second: ${busiestWindow(times, 1000)}`);
      assert.ok(calls / times.length < 0.5, `${calls} script calls for ${times.length} tokens`);
    } finally {
      await closeAll(nodes);
    }
  });

  test('at a high rate one node takes its tokens in chunks: few commands per token', async () => {
    const nodes = [await node(redis.url, 'a'), await node(redis.url, 'b'), await node(redis.url, 'c')];
    try {
      const limits: DestinationLimits = { maxConnections: 10, rate: { count: 3000, perMs: 1000, burst: 300 } };
      const before = await scriptCalls(redis);
      const times = await drain(nodes, 'chunks.test', limits, 3000);
      const calls = (await scriptCalls(redis)) - before;
      assert.ok(calls / times.length <= 0.2, `${calls} script calls for ${times.length} tokens`);
    } finally {
      await closeAll(nodes);
    }
  });

  test('tokens given back are granted again; the same grant id grants once', async () => {
    const [a, b] = [await node(redis.url, 'a'), await node(redis.url, 'b')];
    try {
      const limits: DestinationLimits = { maxConnections: 1, rate: { count: 1, perMs: 3_600_000, burst: 5 } };
      assert.equal((await a.coordinator.takeTokens('back.test', limits, 5)).granted, 5);
      assert.equal((await b.coordinator.takeTokens('back.test', limits, 1)).granted, 0, 'the burst is spent for every node');
      const tat = async () => Number(await redis.cli('HGET', rateKey(a.link, 'back.test'), 'tat'));
      const spent = await tat();
      // Three messages did not go: a holds their tokens for its next ones a moment, then gives them back.
      a.coordinator.returnTokens('back.test', limits, 3);
      await waitFor(async () => (await tat()) < spent);
      const c = await node(redis.url, 'c');
      try {
        assert.equal((await c.coordinator.takeTokens('back.test', limits, 5)).granted, 3, 'the 3 given back, no more');
      } finally {
        await closeAll([c]);
      }

      const keys = [rateKey(a.link, 'once.test')];
      // call id, node, step 1 s, burst 3, 3 wanted, nothing reserved ahead, nothing given back: all 3 due now.
      const args = ['grant-1', 'a', '1000000.000000', 3, 3, 0, 0, ''];
      const first = (await a.link.script('grant', GRANT_LUA, keys, args)) as unknown[];
      assert.deepEqual(first.slice(0, 2), [3, -2_000_000]);
      assert.deepEqual(await a.link.script('grant', GRANT_LUA, keys, args), first, 'a rerun answers the first answer');
      const fresh = (await a.link.script('grant', GRANT_LUA, keys, ['grant-2', ...args.slice(1)])) as number[];
      assert.equal(fresh[0], 0, 'the rerun granted nothing more: the burst of 3 is spent');
    } finally {
      await closeAll([a, b]);
    }
  });

  test('max_connections=2 over 3 nodes: the third is refused; a node that stops renewing loses its slot within the TTL and the refused one hears of it', async () => {
    const nodes = [await node(redis.url, 'a'), await node(redis.url, 'b'), await node(redis.url, 'c')];
    const [a, b, c] = nodes;
    const limits: DestinationLimits = { maxConnections: 2 };
    try {
      assert.equal((await a.coordinator.acquireSlot('lease.test', limits, 'la')).granted, true);
      assert.equal((await a.coordinator.acquireSlot('lease.test', limits, 'la')).granted, true, 'the same lease id holds one slot');
      assert.equal((await b.coordinator.acquireSlot('lease.test', limits, 'lb')).granted, true);
      assert.equal((await c.coordinator.acquireSlot('lease.test', limits, 'lc')).granted, false);
      assert.equal(await redis.cli('ZCARD', leasesKey(a.link, 'lease.test')), '2');

      // b releases: c hears it at once and gets the slot.
      b.coordinator.releaseSlot({ key: 'lease.test', id: 'lb' });
      await waitFor(() => c.freed.includes('lease.test'));
      assert.equal((await c.coordinator.acquireSlot('lease.test', limits, 'lc')).granted, true);

      // a's node dies without a word (its link cut, no release): its lease lapses in lease_ttl (3 s).
      b.freed.length = 0;
      assert.equal((await b.coordinator.acquireSlot('lease.test', limits, 'lb2')).granted, false);
      await a.link.close();
      await waitFor(() => b.freed.includes('lease.test'), 10_000);
      assert.equal((await b.coordinator.acquireSlot('lease.test', limits, 'lb2')).granted, true);
      // The same acquisition run twice in Redis holds one slot.
      const key = leasesKey(b.link, 'lease.test');
      assert.deepEqual(await b.link.script('acquire', ACQUIRE_LUA, [key], ['lb2', 2, 3_000_000]), [1, 0]);
      assert.equal(await redis.cli('ZCARD', key), '2');
    } finally {
      await closeAll([b, c]);
      await a.coordinator.close();
    }
  });
});

describe('RedisCoordinator: review findings (commands, late tokens, give-back, renewals)', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    await redis.stop();
  });

  test('a destination Redis refused is answered here, without Redis, until a slot of it is freed', async () => {
    const [a, b] = [await node(redis.url, 'a'), await node(redis.url, 'b')];
    const limits: DestinationLimits = { maxConnections: 1 };
    try {
      assert.equal((await a.coordinator.acquireSlot('busy.test', limits, 'held')).granted, true);
      assert.equal((await b.coordinator.acquireSlot('busy.test', limits, 'b-0')).granted, false);
      const before = await scriptCalls(redis);
      for (let i = 1; i <= 50; i++) assert.equal((await b.coordinator.acquireSlot('busy.test', limits, `b-${i}`)).granted, false);
      assert.equal((await scriptCalls(redis)) - before, 0, 'fifty asks of a refused destination cost Redis nothing');
      a.coordinator.releaseSlot({ key: 'busy.test', id: 'held' });
      await waitFor(() => b.freed.includes('busy.test'));
      assert.equal((await b.coordinator.acquireSlot('busy.test', limits, 'b-after')).granted, true, 'freed: b asks Redis again and gets the slot');
    } finally {
      await closeAll([a, b]);
    }
  });

  test('tokens whose time passed long ago are not handed out at once', async () => {
    const a = await node(redis.url, 'a');
    const limits: DestinationLimits = { maxConnections: 1, rate: { count: 100, perMs: 1000, burst: 1 } };
    try {
      // A chunk of 21 (one due now, the others a step apart): one goes, the node then sleeps past them all.
      assert.equal((await a.coordinator.takeTokens('late.test', limits, 50)).granted, 1);
      await sleep(600);
      const late = await a.coordinator.takeTokens('late.test', limits, 50);
      assert.ok(late.granted <= 3, `${late.granted} tokens at once for 100/s with a burst of 1`);
    } finally {
      await closeAll([a]);
    }
  });

  test('a node gives back no token when another reserved after it', async () => {
    const [a, b] = [await node(redis.url, 'a'), await node(redis.url, 'b')];
    const limits: DestinationLimits = { maxConnections: 1, rate: { count: 10, perMs: 1000, burst: 1 } };
    try {
      assert.equal((await a.coordinator.takeTokens('back2.test', limits, 5)).granted, 1, 'a holds a chunk ahead');
      // b reserves after a (as soon as GCRA lets it): the TAT now ends at b's tokens.
      for (let got = 0; got === 0; ) {
        const answer = await b.coordinator.takeTokens('back2.test', limits, 5);
        got = answer.granted;
        if (got === 0) await sleep(Math.max(1, (answer.retryAt ?? Date.now() + 5) - Date.now()));
      }
      const tat = async () => Number(await redis.cli('HGET', rateKey(a.link, 'back2.test'), 'tat'));
      const after = await tat();
      await a.coordinator.close();
      assert.ok((await tat()) >= after, 'the TAT still covers what b reserved after a');
    } finally {
      await closeAll([b]);
      await a.link.close();
    }
  });

  test('a connection cap that is only the node\'s own (no max_connections in limits.ini) is not shared: each node has it whole, nothing in Redis', async () => {
    const [a, b] = [await node(redis.url, 'a'), await node(redis.url, 'b')];
    const limits: DestinationLimits = { maxConnections: 2, nodeOnly: true, rate: { count: 10, perMs: 1000, burst: 1 } };
    try {
      assert.deepEqual(await grab([a, b], 'own.test', limits), [2, 2]);
      assert.equal(await redis.cli('ZCARD', leasesKey(a.link, 'own.test')), '0');
      assert.equal(a.coordinator.keepSlot({ key: 'own.test', id: 'a-own.test-0' }), true);
      a.coordinator.releaseSlot({ key: 'own.test', id: 'a-own.test-0' });
      await waitFor(() => a.freed.includes('own.test'));
      assert.equal((await a.coordinator.acquireSlot('own.test', limits, 'again')).granted, true);
    } finally {
      await closeAll([a, b]);
    }
  });

  test('a renewal puts back no more leases than the limit and the one not kept is not kept by the node', async () => {
    const [a, b] = [await node(redis.url, 'a'), await node(redis.url, 'b')];
    const limits: DestinationLimits = { maxConnections: 1 };
    try {
      assert.equal((await a.coordinator.acquireSlot('renew.test', limits, 'la')).granted, true);
      assert.equal(a.coordinator.keepSlot({ key: 'renew.test', id: 'la' }), true);
      // Redis loses its data (restarted empty); b takes the slot before a renews.
      await redis.cli('FLUSHALL');
      assert.equal((await b.coordinator.acquireSlot('renew.test', limits, 'lb')).granted, true);
      await waitFor(() => !a.coordinator.keepSlot({ key: 'renew.test', id: 'la' }), 10_000);
      assert.equal(await redis.cli('ZCARD', leasesKey(a.link, 'renew.test')), '1', 'one session for max_connections=1');
      const lost = (await a.link.script('renew', RENEW_LUA, [leasesKey(a.link, 'renew.test')], [3_000_000, 1, 'lb', 'other'])) as unknown[];
      assert.deepEqual(lost[1], ['other'], 'the script keeps the one there and refuses the one over the limit');
    } finally {
      await closeAll([a, b]);
    }
  });
});

/** Slots of `key` each node gets by asking until refused (ids unique per node). */
async function grab(nodes: readonly Node[], key: string, limits: DestinationLimits, tries = 10): Promise<number[]> {
  return Promise.all(
    nodes.map(async (n) => {
      let got = 0;
      for (let i = 0; i < tries; i++) if ((await n.coordinator.acquireSlot(key, limits, `${n.link.nodeId}-${key}-${i}`)).granted) got++;
      return got;
    }),
  );
}

describe('RedisCoordinator: Redis stopped or killed (failure_mode)', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    await redis.stop();
  });

  test('share: the shares of the nodes last seen alive sum to each limit; back to Redis, the slots held are registered again', async () => {
    const nodes = [await node(redis.url, 'a'), await node(redis.url, 'b'), await node(redis.url, 'c')];
    try {
      await waitFor(() => nodes.every((n) => n.coordinator.nodesAlive.length === 3));
      redis.pause();
      // For a lease TTL the leases Redis granted may all be live: no new slot.
      assert.deepEqual(await grab(nodes, 'share.test', { maxConnections: 5 }), [0, 0, 0]);
      await waitFor(() => nodes.every((n) => Date.now() - (n.link.downSinceMs ?? Date.now()) > 3000));
      const slots = await grab(nodes, 'share.test', { maxConnections: 5 });
      assert.equal(slots.reduce((a, b) => a + b, 0), 5, `slots per node: ${slots}`);
      const rate: DestinationLimits = { maxConnections: 5, rate: { count: 30, perMs: 1000, burst: 9 } };
      const tokens = await Promise.all(nodes.map(async (n) => (await n.coordinator.takeTokens('share.test', rate, 100)).granted));
      assert.equal(tokens.reduce((a, b) => a + b, 0), 9, `tokens per node: ${tokens}`);
      assert.ok(nodes.every((n) => !n.link.up));

      redis.resume();
      await waitFor(async () => (await redis.cli('ZCARD', leasesKey(nodes[0].link, 'share.test'))) === '5');
      assert.equal((await nodes[0].coordinator.acquireSlot('share.test', { maxConnections: 5 }, 'one-more')).granted, false, 'Redis counts the 5 held');
    } finally {
      redis.resume();
      await closeAll(nodes);
    }
  });

  test('nodes=N: a worker that never reached Redis counts its machine\'s workers alive and takes its share, not the whole limit', async () => {
    // Nothing listens on port 1: Redis is away from the start.
    const settings = redisMainSchema.parse({ enabled: 'true', url: 'redis://127.0.0.1:1', command_timeout: '200', key_prefix: 'it:', lease_ttl: '3', heartbeat_interval: '1' });
    const peers = ['mx1/shard-0', 'mx1/shard-1'];
    const workers: Node[] = peers.map((id) => {
      const link = new RedisLink({ settings, nodeId: id, logger: quiet() });
      const coordinator = new RedisCoordinator({ link, settings, clock: systemClock, logger: quiet(), counts: () => ({ queued: 0, in_flight: 0, sessions: 0 }), version: 'test', peers });
      return { link, coordinator, freed: [] };
    });
    try {
      for (const w of workers) assert.deepEqual(w.coordinator.nodesAlive, peers);
      // For a lease TTL no new slot (leases Redis granted before may be live), then each worker's share.
      assert.deepEqual(await grab(workers, 'machine.test', { maxConnections: 3 }), [0, 0]);
      await waitFor(() => workers.every((w) => Date.now() - (w.link.downSinceMs ?? Date.now()) > 3000));
      const got = await grab(workers, 'machine.test', { maxConnections: 3 });
      assert.deepEqual(got, [slotShare('machine.test', 3, 2, 0), slotShare('machine.test', 3, 2, 1)]);
      assert.equal(got[0] + got[1], 3);
    } finally {
      await closeAll(workers);
    }
  });

  test('closed: no slot and no token while Redis does not answer; open: the whole limit on each node', async () => {
    const closed = await node(redis.url, 'closed', { failure_mode: 'closed' });
    const open = await node(redis.url, 'open', { failure_mode: 'open' });
    const limits: DestinationLimits = { maxConnections: 3, rate: { count: 10, perMs: 1000, burst: 4 } };
    try {
      redis.pause();
      assert.equal((await closed.coordinator.acquireSlot('modes.test', limits, 'x1')).granted, false);
      const refused = await closed.coordinator.takeTokens('modes.test', limits, 1);
      assert.equal(refused.granted, 0);
      assert.ok(refused.retryAt !== undefined && refused.retryAt > Date.now());
      assert.deepEqual(await grab([open], 'modes.test', limits), [3]);
      assert.equal((await open.coordinator.takeTokens('modes.test', limits, 100)).granted, 4, 'the whole burst');
    } finally {
      redis.resume();
      await closeAll([closed, open]);
    }
  });

  test('Redis killed and restarted empty: share answers meanwhile within the limit, counting what the others held, and the leases held are put back in Redis', async () => {
    const nodes = [await node(redis.url, 'a'), await node(redis.url, 'b')];
    const limits: DestinationLimits = { maxConnections: 2 };
    try {
      assert.equal((await nodes[0].coordinator.acquireSlot('killed.test', limits, 'held-before')).granted, true);
      await waitFor(() => nodes.every((n) => n.coordinator.nodesAlive.length === 2));
      // b has read a's lease in a heartbeat (a's record names it).
      await waitFor(async () => ((await redis.cli('GET', nodes[0].link.key('{nodes}', 'node', 'a'))) ?? '').includes('killed.test'));
      await sleep(1500);
      await redis.kill();
      const more = await grab(nodes, 'killed.test', limits);
      const kept = nodes[0].coordinator.keepSlot({ key: 'killed.test', id: 'held-before' }) ? 1 : 0;
      assert.ok(kept + more[0] + more[1] <= 2, `kept ${kept}, taken while Redis was away: ${more}`);
      await redis.restart();
      await waitFor(async () => Number(await redis.cli('ZCARD', leasesKey(nodes[0].link, 'killed.test')).catch(() => '0')) >= 1);
      assert.ok(Number(await redis.cli('ZCARD', leasesKey(nodes[0].link, 'killed.test'))) <= 2);
    } finally {
      await closeAll(nodes);
    }
  });
});

describe('RedisCoordinator: back from an outage (the rejoin fence)', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    await redis.stop();
  });
  const fenceKey = (n: Node) => n.link.key('{rejoin}', 'fence');

  test('Redis restarted empty: no node takes a new slot until the leases held are back, so the live session keeps its slot', async () => {
    const [a, b] = [await node(redis.url, 'a'), await node(redis.url, 'b')];
    const limits: DestinationLimits = { maxConnections: 1 };
    const downs: string[] = [];
    for (const n of [a, b]) n.link.on('down', () => downs.push(n.link.nodeId));
    try {
      assert.equal((await a.coordinator.acquireSlot('fence.test', limits, 'la')).granted, true);
      await redis.restart();
      await waitFor(() => downs.includes('a') && downs.includes('b') && a.link.up && b.link.up);
      // b asks for a slot as fast as the shaper could, from the moment it sees Redis again until the fence is down.
      let asked = 0;
      let fenceSeen = false;
      let granted = 0;
      await waitFor(async () => {
        asked++;
        if ((await b.coordinator.acquireSlot('fence.test', limits, `lb-${asked}`)).granted) granted++;
        if (Number(await redis.cli('PTTL', fenceKey(a))) > 0) fenceSeen = true;
        return fenceSeen && (await redis.cli('EXISTS', fenceKey(a))) === '0';
      });
      assert.equal(fenceSeen, true, 'the first node back raised the fence');
      assert.equal(granted, 0, `b was granted ${granted} of ${asked} asks while a's session held the only slot`);
      assert.equal(await redis.cli('ZRANGE', leasesKey(a.link, 'fence.test'), '0', '-1'), 'la');
      assert.equal(a.coordinator.keepSlot({ key: 'fence.test', id: 'la' }), true);
    } finally {
      await closeAll([a, b]);
    }
  });

  test('Redis paused and resumed (nothing lost): no fence; the node back takes new slots once its own are put back', async () => {
    // A TTL far longer than the pause: Redis still holds a's lease when it answers again.
    const [a, b] = [await node(redis.url, 'a', { lease_ttl: '30' }), await node(redis.url, 'b', { lease_ttl: '30' })];
    const limits: DestinationLimits = { maxConnections: 2 };
    const ups: string[] = [];
    for (const n of [a, b]) n.link.on('up', () => ups.push(n.link.nodeId));
    try {
      assert.equal((await a.coordinator.acquireSlot('blip.test', limits, 'la')).granted, true);
      redis.pause();
      // Heartbeats (every second) find it silent.
      await waitFor(() => !a.link.up && !b.link.up);
      redis.resume();
      await waitFor(() => ups.includes('a') && ups.includes('b'));
      assert.equal((await b.coordinator.acquireSlot('blip.test', limits, 'lb')).granted, true);
      assert.equal(await redis.cli('EXISTS', fenceKey(a)), '0');
      assert.equal(a.coordinator.keepSlot({ key: 'blip.test', id: 'la' }), true);
    } finally {
      await closeAll([a, b]);
    }
  });
});

describe('RedisCoordinator: a 3-master Redis Cluster', () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await RedisCluster.start();
  });
  after(async () => {
    await cluster.stop();
  });

  const clusterNode = (id: string) => node({ cluster: cluster.seeds }, id);

  test('rate and leases hold over the masters; the master of the destination killed: calls answer from failure_mode', async () => {
    const nodes = [await clusterNode('a'), await clusterNode('b'), await clusterNode('c')];
    try {
      const limits: DestinationLimits = { maxConnections: 2, rate: { count: 200, perMs: 1000, burst: 20 } };
      const times = await drain(nodes, 'cluster.test', limits, 400);
      // Timed on this process's clock after each answer (Redis's clock paces them): 2 % for a busy machine's jitter; a bunch of late tokens is far more.
      assert.ok(busiestWindow(times, 1000) <= 220 + 4, `busiest second: ${busiestWindow(times, 1000)}`);
      assert.deepEqual((await grab(nodes, 'cluster.test', limits)).reduce((a, b) => a + b, 0), 2);

      // Every node has heard, by a heartbeat, which slots the others hold.
      await sleep(2500);
      await (await cluster.masterOf(leasesKey(nodes[0].link, 'cluster.test'))).kill();
      const answers = await Promise.all(nodes.map((n) => n.coordinator.acquireSlot('cluster.test', limits, `${n.link.nodeId}-after`)));
      const tokens = await Promise.all(nodes.map((n) => n.coordinator.takeTokens('cluster.test', limits, 100)));
      // failure_mode=share answers: no new slot while the two held are open, and the rate's shares add up to its burst at most.
      assert.equal(answers.filter((a) => a.granted).length, 0, 'the 2 slots are held already');
      assert.ok(tokens.reduce((n, t) => n + t.granted, 0) <= 20, `tokens: ${tokens.map((t) => t.granted)}`);
      assert.ok(tokens.every((t) => t.granted > 0 || (t.retryAt ?? 0) > 0), 'a refusal says when to ask again');
    } finally {
      await closeAll(nodes);
    }
  });
});
