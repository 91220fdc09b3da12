import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { RedisLink } from '../../src/cluster/index.js';
import { redisMainSchema } from '../../src/config/index.js';
import { RedisCluster, RedisServer } from '../helpers/redis-server.js';
import { recordingLogger } from '../helpers/recording-logger.js';


const settings = (over: Record<string, unknown>) => redisMainSchema.parse({ enabled: 'true', command_timeout: '200', ...over });

const INCR_ONCE = `
-- Idempotent by call id: a second run with the same id returns the first run's answer.
local done = redis.call('GET', KEYS[2])
if done then return tonumber(done) end
local n = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], n, 'PX', 60000)
return n`;

describe('RedisLink: one node to a standalone Redis', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    await redis.stop();
  });

  test('runs idempotent scripts on keys that share a destination hash tag, and answers TIME in microseconds', async () => {
    const { logger } = recordingLogger();
    const link = new RedisLink({ settings: settings({ url: redis.url, key_prefix: 'it:' }), nodeId: 'n1', logger });
    try {
      assert.equal(await link.ready(5000), true);
      const counter = link.destinationKey('example.com', 'count');
      assert.equal(counter, 'it:{example.com}:count');
      const call = link.destinationKey('example.com', 'call:abc');
      assert.equal(await link.script('incr_once', INCR_ONCE, [counter, call], []), 1);
      assert.equal(await link.script('incr_once', INCR_ONCE, [counter, call], []), 1, 'the same call id runs once');
      assert.equal(await link.script('incr_once', INCR_ONCE, [counter, link.destinationKey('example.com', 'call:def')], []), 2);
      const t = await link.time();
      assert.ok(t !== undefined && Math.abs(t / 1000 - Date.now()) < 5000 && Number.isInteger(t));
    } finally {
      await link.close();
    }
  });

  test('a stopped Redis: the call gives up within the timeout, later calls answer at once, and the link comes back after SIGCONT', async () => {
    const { logger, records } = recordingLogger();
    const link = new RedisLink({ settings: settings({ url: redis.url }), nodeId: 'n2', logger });
    try {
      assert.equal(await link.ready(5000), true);
      redis.pause();
      const down = once(link, 'down');
      assert.equal(await link.call('get', (c) => c.get('x')), undefined);
      await down;
      assert.equal(link.up, false);
      assert.equal(await link.call('get', (c) => c.get('x')), undefined, 'down: answered without asking Redis');
      const up = once(link, 'up');
      redis.resume();
      await up;
      assert.equal(await link.call('set', (c) => c.set('x', '1')), 'OK');
      assert.ok(records.some((r) => r.event === 'redis_down' && r.node === 'n2'));
      assert.ok(records.some((r) => r.event === 'redis_up' && r.node === 'n2'));
    } finally {
      redis.resume();
      await link.close();
    }
  });

  test('a node started while Redis is away hears what is published once Redis is there', async () => {
    const { logger } = recordingLogger();
    const port = redis.port;
    await redis.kill();
    const late = new RedisLink({ settings: settings({ url: `redis://127.0.0.1:${port}` }), nodeId: 'late', logger });
    const got: string[] = [];
    late.subscribe('freed', (m) => got.push(m));
    try {
      // Longer than two reconnect attempts: a SUBSCRIBE with a retry limit is dropped by then.
      await new Promise((r) => setTimeout(r, 1500));
      await redis.restart();
      const speaker = new RedisLink({ settings: settings({ url: redis.url }), nodeId: 'speaker', logger });
      try {
        assert.equal(await speaker.ready(5000), true);
        await waitFor(async () => {
          speaker.publish('freed', 'example.com');
          await new Promise((r) => setTimeout(r, 50));
          return got.includes('example.com');
        });
      } finally {
        await speaker.close();
      }
    } finally {
      await late.close();
    }
  });

  test('a Redis killed and started again: down, then up again without a restart of the node; pub/sub resubscribes', async () => {
    const { logger } = recordingLogger();
    const a = new RedisLink({ settings: settings({ url: redis.url }), nodeId: 'a', logger });
    const b = new RedisLink({ settings: settings({ url: redis.url }), nodeId: 'b', logger });
    try {
      assert.equal(await a.ready(5000), true);
      assert.equal(await b.ready(5000), true);
      const got: string[] = [];
      b.subscribe('policy', (m) => got.push(m));
      await waitFor(async () => {
        a.publish('policy', 'one');
        await new Promise((r) => setTimeout(r, 50));
        return got.includes('one');
      });
      const down = once(a, 'down');
      await redis.restart();
      await a.call('ping', (c) => c.ping());
      await down;
      await waitFor(async () => a.up && b.up);
      await waitFor(async () => {
        a.publish('policy', 'two');
        await new Promise((r) => setTimeout(r, 50));
        return got.includes('two');
      });
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe('RedisLink: a 3-master Redis Cluster', () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await RedisCluster.start();
  });
  after(async () => {
    await cluster.stop();
  });

  test('a script over several keys of one destination runs on the master of its slot; pub/sub crosses masters', async () => {
    const { logger } = recordingLogger();
    const link = new RedisLink({ settings: settings({ cluster: cluster.seeds }), nodeId: 'c1', logger });
    const other = new RedisLink({ settings: settings({ cluster: cluster.seeds }), nodeId: 'c2', logger });
    try {
      assert.equal(await link.ready(10_000), true);
      assert.equal(await other.ready(10_000), true);
      for (const domain of ['example.com', 'example.net', 'example.org', 'outlook.com']) {
        const keys = [link.destinationKey(domain, 'count'), link.destinationKey(domain, 'call:1')];
        assert.equal(await link.script('incr_once', INCR_ONCE, keys, []), 1, domain);
        assert.equal(await link.script('incr_once', INCR_ONCE, keys, []), 1, domain);
      }
      const got: string[] = [];
      other.subscribe('policy', (m) => got.push(m));
      await waitFor(async () => {
        link.publish('policy', 'hello');
        await new Promise((r) => setTimeout(r, 50));
        return got.includes('hello');
      });
    } finally {
      await Promise.all([link.close(), other.close()]);
    }
  });

  test('one master killed: its destinations answer undefined at once, the others are served, and the link does not flap', async () => {
    const { logger, records } = recordingLogger();
    const link = new RedisLink({ settings: settings({ cluster: cluster.seeds }), nodeId: 'c3', logger });
    try {
      assert.equal(await link.ready(10_000), true);
      const domains = Array.from({ length: 30 }, (_, i) => `d${i}.example`);
      const victim = await cluster.masterOf(link.destinationKey(domains[0], 'count'));
      const onVictim: string[] = [];
      const elsewhere: string[] = [];
      for (const d of domains) ((await cluster.masterOf(link.destinationKey(d, 'count'))) === victim ? onVictim : elsewhere).push(d);
      assert.ok(elsewhere.length > 0);
      await victim.kill();
      const run = (d: string) => link.script('incr_once', INCR_ONCE, [link.destinationKey(d, 'count'), link.destinationKey(d, `call:${Math.random()}`)], []);
      for (let round = 0; round < 3; round++) {
        for (const d of onVictim) assert.equal(await run(d), undefined, d);
        for (const d of elsewhere) assert.equal(typeof (await run(d)), 'number', d);
      }
      assert.equal(link.up, true);
      assert.equal(records.filter((r) => r.event === 'redis_down').length, 0);
      assert.ok(records.some((r) => r.event === 'redis_slot_down' && r.node === 'c3'));
    } finally {
      await link.close();
    }
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}
