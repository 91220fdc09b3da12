import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import { World } from '../helpers/world.js';
import { listenOn } from '../helpers/ports.js';
import { makeCert } from '../helpers/certs.js';
import { RedisServer } from '../helpers/redis-server.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { is } from '../helpers/tern-process.js';
import type { TernProcess } from '../helpers/tern-process.js';

const POLICY_HOST = '127.0.0.217';

/**
 * Issue 17: MTA-STS policies shared as a cache. Node A fetches a domain's policy over
 * HTTPS; node B, on the same Redis, delivers to the domain without fetching it, and
 * enforces it (verified TLS to a listed MX; a domain whose MX the policy does not list
 * defers with 4.7.5).
 */
describe('MTA-STS policies shared by two nodes through Redis', () => {
  let world: World;
  let redis: RedisServer;
  let https: Server;
  const nodes: TernProcess[] = [];
  const fetches: string[] = [];
  const policies: Record<string, string> = {
    'mta-sts.ssts.test': 'version: STSv1\nmode: enforce\nmx: mx.good.test\nmax_age: 86400\n',
    'mta-sts.sstsbad.test': 'version: STSv1\nmode: enforce\nmx: *.good.test\nmax_age: 86400\n',
  };
  const webCert = makeCert('mta-sts.ssts.test', Object.keys(policies));

  before(async () => {
    redis = await RedisServer.start();
    world = new World({ tls: '127.0.0.218', dead: '127.0.0.212', plain: '127.0.0.219' });
    for (const d of ['ssts.test', 'sstsbad.test']) {
      world.dns.add(`_mta-sts.${d}`, { type: 'TXT', data: 'v=STSv1; id=20261202T1;' }).add(`mta-sts.${d}`, { type: 'A', data: POLICY_HOST });
    }
    world.dns
      .add('ssts.test', { type: 'MX', preference: 10, exchange: 'mx.good.test' })
      .add('sstsbad.test', { type: 'MX', preference: 10, exchange: 'mx.elsewhere.test' })
      .add('mx.elsewhere.test', { type: 'A', data: '127.0.0.219' });
    await world.start();
    https = createServer({ key: webCert.key, cert: webCert.cert }, (req, res) => {
      fetches.push(String(req.headers.host));
      const body = policies[String(req.headers.host)];
      if (!body || req.url !== '/.well-known/mta-sts.txt') return res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
    });
    const httpsPort = await listenOn(https, POLICY_HOST);
    for (const n of ['a', 'b']) {
      nodes.push(
        await world.tern({
          outbound: `mta_sts_port=${httpsPort}`,
          files: {
            'tls.ini': '[outbound]\nca=trust.pem\n',
            'trust.pem': Buffer.concat([world.cert.cert, webCert.cert]),
            'redis.ini': `[main]\nenabled=true\nurl=${redis.url}\nnode_id=sts-${n}\nkey_prefix=sts-e2e:\n`,
          },
        }),
      );
    }
    for (const n of nodes) await n.waitFor((r) => r.event === 'redis_up');
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    https?.close();
    await world?.stop();
    await redis?.stop();
  });

  it('node A fetches the policies; node B uses them from Redis without fetching, and enforces them', async () => {
    const [a, b] = nodes;
    await sendMail({ port: a.port, from: 'app@client.test', to: ['one@ssts.test'], body: message('a1') });
    assert.equal((await a.waitFor(is('Delivery', 'one@ssts.test'))).tls, true);
    await sendMail({ port: a.port, from: 'app@client.test', to: ['one@sstsbad.test'], body: message('a2') });
    await a.waitFor(is('TransientFailure', 'one@sstsbad.test'));
    assert.deepEqual(fetches.sort(), ['mta-sts.ssts.test', 'mta-sts.sstsbad.test']);

    await sendMail({ port: b.port, from: 'app@client.test', to: ['two@ssts.test'], body: message('b1') });
    const delivered = await b.waitFor(is('Delivery', 'two@ssts.test'));
    assert.equal(delivered.tls, true, 'enforce: verified TLS to the listed MX');
    await sendMail({ port: b.port, from: 'app@client.test', to: ['two@sstsbad.test'], body: message('b2') });
    const deferred = await b.waitFor(is('TransientFailure', 'two@sstsbad.test'));
    assert.equal((deferred.response as { enhanced_code: string }).enhanced_code, '4.7.5', 'enforce: no listed MX');
    assert.ok(!world.mx2.recipients().includes('two@sstsbad.test'));

    assert.equal(fetches.length, 2, 'the policy server saw one fetch per domain, all from A');
    const shared = b.records.filter((r) => r.event === 'mta_sts_shared');
    assert.deepEqual(shared.map((r) => r.domain).sort(), ['ssts.test', 'sstsbad.test']);
    assert.equal(shared[0].mode, 'enforce');
    assert.equal(b.records.filter((r) => r.msg === 'MTA-STS policy fetched').length, 0);
  });
});
