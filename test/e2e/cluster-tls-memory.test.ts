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
 * Issue 17: the TLS-failure memory shared as a cache. Node A's STARTTLS to a host fails and
 * it falls back to plaintext; node B, on the same Redis, goes to that host in plaintext
 * at once. The shared memory never reaches a route that requires TLS.
 */
describe('TLS-failure memory shared by two nodes through Redis', () => {
  let world: World;
  let redis: RedisServer;
  const sink = new FlakySink('127.0.0.216', { brokenTls: true });
  const nodes: Partial<Record<'a' | 'b', TernProcess>> = {};

  before(async () => {
    sink.down = false;
    redis = await RedisServer.start();
    world = await new World({ tls: '127.0.0.211', dead: '127.0.0.212', plain: '127.0.0.213' }).start();
    for (const d of ['tlsmem.test', 'tlsreq.test']) world.dns.add(d, { type: 'MX', preference: 10, exchange: 'mx.tlsmem.test' });
    world.dns.add('mx.tlsmem.test', { type: 'A', data: sink.host });
    await sink.start(world.port);
    for (const n of ['a', 'b'] as const) {
      nodes[n] = await world.tern({
        files: {
          'redis.ini': `[main]\nenabled=true\nurl=${redis.url}\nnode_id=tls-${n}\nkey_prefix=tls-e2e:\n`,
          'routes.ini': `[tlsmem.test]\nbind=${FROM[n]}\n[tlsreq.test]\nbind=${FROM[n]}\ntls=required\n`,
        },
      });
    }
    for (const n of ['a', 'b'] as const) await nodes[n]!.waitFor((r) => r.event === 'redis_up');
  });
  after(async () => {
    await Promise.all([nodes.a?.stop(), nodes.b?.stop()]);
    await sink.stop();
    await world?.stop();
    await redis?.stop();
  });

  it('B delivers in plaintext without a handshake A found broken; a route that requires TLS still tries it', async () => {
    const { a, b } = nodes as Record<'a' | 'b', TernProcess>;
    await sendMail({ port: a.port, from: 'app@client.test', to: ['one@tlsmem.test'], body: message('one') });
    assert.equal((await a.waitFor(is('Delivery', 'one@tlsmem.test'))).tls, false);
    await a.waitFor((r) => r.msg === 'TLS handshake failed; retrying this host in plaintext');
    assert.deepEqual(sink.starttls, [FROM.a]);

    await sendMail({ port: b.port, from: 'app@client.test', to: ['two@tlsmem.test'], body: message('two') });
    assert.equal((await b.waitFor(is('Delivery', 'two@tlsmem.test'))).tls, false);
    assert.deepEqual(sink.starttls, [FROM.a], 'B did not try the handshake A found broken');
    const used = await b.waitFor((r) => r.event === 'tls_memory_shared');
    assert.deepEqual(used.peer, { name: 'mx.tlsmem.test', address: sink.host, port: world.port });

    // tls=required: the shared memory does not apply; the handshake fails and the mail waits.
    await sendMail({ port: b.port, from: 'app@client.test', to: ['three@tlsreq.test'], body: message('three') });
    const deferred = await b.waitFor(is('TransientFailure', 'three@tlsreq.test'));
    assert.equal((deferred.response as { code: number }).code, 451);
    assert.deepEqual(sink.starttls, [FROM.a, FROM.b]);
    assert.ok(!sink.received.includes('three@tlsreq.test'));
  });
});
