import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { World } from '../helpers/world.js';
import { RecordingMx } from '../helpers/recording-mx.js';
import { RedisCluster } from '../helpers/redis-server.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import type { TernProcess } from '../helpers/tern-process.js';

/** Issue #17 on a 3-master Redis Cluster: every key of a destination shares its hash tag, so each script runs on one master. */
describe('three nodes and a 3-master Redis Cluster: limits.ini holds for the cluster', () => {
  let world: World;
  let cluster: RedisCluster;
  let nodes: TernProcess[] = [];
  const sink = new RecordingMx('127.0.0.148', 0, { dataDelayMs: 10 });

  before(async () => {
    world = await new World({ tls: '127.0.0.145', dead: '127.0.0.146', plain: '127.0.0.147' }).start();
    cluster = await RedisCluster.start();
    sink.port = world.port;
    await sink.start();
    world.dns.add('sink.test', { type: 'MX', preference: 10, exchange: 'mx.sink.test' }).add('mx.sink.test', { type: 'A', data: sink.host });
    const redisIni = (i: number) => `[main]\nenabled=true\ncluster=${cluster.seeds}\nnode_id=c${i}\nlease_ttl=3\nheartbeat_interval=1\n`;
    nodes = await Promise.all([0, 1, 2].map((i) => world.tern({ files: { 'limits.ini': '[sink.test]\nmax_connections=2\nmax_message_rate=100/s\n', 'redis.ini': redisIni(i) } })));
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await sink.stop();
    await cluster?.stop();
    await world?.stop();
  });

  it('max_connections=2 over three nodes: never more than 2 sessions at the sink, every message once', async () => {
    let k = 0;
    const rcpts = nodes.map((n) => Array.from({ length: 40 }, () => ({ port: n.port, to: `c${k++}@sink.test` })));
    for (const batch of rcpts.flat().reduce<{ port: number; to: string }[][]>((acc, m, i) => (i % 10 ? acc[acc.length - 1].push(m) : acc.push([m]), acc), [])) {
      await Promise.all(batch.map(({ port, to }) => sendMail({ port, from: 'app@sender.test', to: [to], body: message(to) })));
    }
    await sink.waitForArrivals(120, 50_000);
    assert.ok(sink.maxConcurrent() <= 2, `${sink.maxConcurrent()} sessions at once`);
    const arrived = sink.arrivals.flatMap((a) => a.recipients);
    assert.equal(new Set(arrived).size, 120, 'every message, once');
  });
});
