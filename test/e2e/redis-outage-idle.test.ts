import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { RecordingMx } from '../helpers/recording-mx.js';
import { RedisServer } from '../helpers/redis-server.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { REPO_ROOT } from '../helpers/tern-process.js';
import type { TernProcess } from '../helpers/tern-process.js';
import { slotShare } from '../../src/cluster/local-share.js';

const waitUntil = async (check: () => boolean, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
};

/** The nodes `tern cluster status` of `node` lists alive. */
const aliveSeenBy = (node: TernProcess): string[] => {
  const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), 'cluster', 'status', '--json', '--api', node.api], { encoding: 'utf8', timeout: 15_000 });
  if (res.status !== 0) return [];
  return (JSON.parse(res.stdout) as { nodes: { id: string; alive: boolean }[] }).nodes.filter((n) => n.alive).map((n) => n.id);
};

/**
 * Issue #17, failure_mode=share: with Redis away, each node keeps its share of a limit.
 * An idle session counts at the remote server as much as a busy one, so a node over its
 * share ends its idle sessions once Redis would have let their leases lapse (a lease TTL),
 * not at idle_timeout; the slot's owner takes it once the idler's last heartbeat is two
 * TTLs old.
 */
describe('Redis away (failure_mode=share): an idle session over this node\'s share ends within a lease TTL, not at idle_timeout', () => {
  let world: World;
  let redis: RedisServer;
  const nodes: TernProcess[] = [];
  const sink = new RecordingMx('127.0.0.67', 0);
  // Two nodes share max_connections=1: by rendezvous hashing one of them owns the slot while Redis is away.
  const ids = ['node-a', 'node-b'];
  const owner = slotShare('sink.test', 1, 2, 0) === 1 ? 0 : 1;
  const [withoutShare, withShare] = [ids[1 - owner], ids[owner]];

  before(async () => {
    world = await new World({ tls: '127.0.0.65', dead: '127.0.0.66', plain: '127.0.0.68' }).start();
    redis = await RedisServer.start();
    sink.port = world.port;
    await sink.start();
    world.dns.add('sink.test', { type: 'MX', preference: 10, exchange: 'mx.sink.test' }).add('mx.sink.test', { type: 'A', data: sink.host });
    for (const id of [withoutShare, withShare]) {
      const redisIni = `[main]\nenabled=true\nurl=${redis.url}\nnode_id=${id}\nlease_ttl=3\nheartbeat_interval=1\ncommand_timeout=200\n`;
      nodes.push(await world.tern({ outbound: 'idle_timeout=120', files: { 'limits.ini': '[sink.test]\nmax_connections=1\n', 'redis.ini': redisIni } }));
    }
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await sink.stop();
    await redis.stop();
    await world?.stop();
  });

  it('the idle session closes when Redis goes; the slot\'s owner then delivers, never two sessions at once', async () => {
    const [idler, other] = nodes;
    await sendMail({ port: idler.port, from: 'app@sender.test', to: ['first@sink.test'], body: message('first') });
    await waitUntil(() => sink.arrivals.length === 1);
    // Its session stays open, idle, for up to idle_timeout (120 s).
    assert.equal(sink.open, 1);
    // Each node has seen the other alive: the share is split between the two.
    for (const node of nodes) await waitUntil(() => aliveSeenBy(node).length === 2);
    await redis.kill();
    try {
      await waitUntil(() => idler.records.some((r) => r.event === 'redis_down'), 15_000);
      await waitUntil(() => sink.open === 0, 15_000);
      await sendMail({ port: other.port, from: 'app@sender.test', to: ['second@sink.test'], body: message('second') });
      // The owner of the slot waits until the idler's last heartbeat is older than the lease TTL, then delivers.
      await waitUntil(() => sink.arrivals.length === 2, 30_000);
      assert.deepEqual(sink.arrivals.map((a) => a.recipients[0]), ['first@sink.test', 'second@sink.test']);
      assert.equal(sink.maxConcurrent(), 1);
      assert.equal(other.records.filter((r) => r.type === 'TransientFailure').length, 0, 'Redis away cost no attempt');
    } finally {
      await redis.restart();
    }
  });
});
