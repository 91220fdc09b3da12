import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { World } from '../helpers/world.js';
import { FlakySink } from '../helpers/flaky-sink.js';
import { RedisServer } from '../helpers/redis-server.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { is } from '../helpers/tern-process.js';
import type { TernProcess } from '../helpers/tern-process.js';

const FROM = { a: '127.0.0.214', b: '127.0.0.215' } as const;

/**
 * Issue 17: a Redis fault never holds mail longer than a single node would. With Redis
 * paused (SIGSTOP: connections stay open, nothing answers), each node finds the
 * destination down by itself, backs it off and probes it on its own, and delivers once
 * it is back.
 */
describe('destination health while Redis does not answer', () => {
  let world: World;
  let redis: RedisServer;
  const sink = new FlakySink('127.0.0.216');
  const nodes: Partial<Record<'a' | 'b', TernProcess>> = {};

  before(async () => {
    redis = await RedisServer.start();
    world = await new World({ tls: '127.0.0.211', dead: '127.0.0.212', plain: '127.0.0.213' }).start();
    world.dns.add('paused.test', { type: 'MX', preference: 10, exchange: 'mx.paused.test' }).add('mx.paused.test', { type: 'A', data: sink.host });
    await sink.start(world.port);
    for (const n of ['a', 'b'] as const) {
      nodes[n] = await world.tern({
        outbound: 'temp_fail_intervals=1s*30\ndestination_backoff_min=2s\ndestination_backoff_max=2s',
        files: {
          'redis.ini': `[main]\nenabled=true\nurl=${redis.url}\nnode_id=paused-${n}\nkey_prefix=paused-e2e:\ncommand_timeout=300\n`,
          'routes.ini': `[paused.test]\nbind=${FROM[n]}\n`,
        },
      });
    }
    for (const n of ['a', 'b'] as const) await nodes[n]!.waitFor((r) => r.event === 'redis_up');
  });
  after(async () => {
    redis?.resume();
    await Promise.all([nodes.a?.stop(), nodes.b?.stop()]);
    await sink.stop();
    await world?.stop();
    await redis?.stop();
  });

  it('each node backs off and probes on its own, and delivers once the destination is back', async () => {
    const { a, b } = nodes as Record<'a' | 'b', TernProcess>;
    redis.pause();
    await sendMail({ port: a.port, from: 'app@client.test', to: ['pa@paused.test'], body: message('pa') });
    await a.waitFor(is('TransientFailure', 'pa@paused.test'));
    await a.waitFor((r) => r.event === 'redis_down');
    await sendMail({ port: b.port, from: 'app@client.test', to: ['pb@paused.test'], body: message('pb') });
    // B heard nothing of A's backoff: it tries for itself, as a single node would.
    await b.waitFor(is('TransientFailure', 'pb@paused.test'));
    assert.ok(sink.sessions.some((s) => s.from === FROM.a) && sink.sessions.some((s) => s.from === FROM.b));

    sink.down = false;
    await a.waitFor(is('Delivery', 'pa@paused.test'), 20_000);
    await b.waitFor(is('Delivery', 'pb@paused.test'), 20_000);
    assert.deepEqual([...sink.received].sort(), ['pa@paused.test', 'pb@paused.test']);
    for (const n of [a, b]) {
      assert.equal(n.records.filter((r) => r.event === 'destination_probe').length, 0, 'no lock could be taken: each probed on its own');
      assert.ok(n.records.some((r) => r.event === 'redis_down'), 'each node found Redis silent within its command_timeout');
    }
  });
});
