import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import { World } from '../helpers/world.js';
import { listenOn } from '../helpers/ports.js';
import { makeCert } from '../helpers/certs.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { is } from '../helpers/tern-process.js';
import type { TernProcess } from '../helpers/tern-process.js';


describe('MTA-STS (RFC 8461) end to end', () => {
  let world: World;
  let tern: TernProcess;
  let https: Server;
  const fetches: string[] = [];
  const policies: Record<string, string> = {
    'mta-sts.sts.test': 'version: STSv1\nmode: enforce\nmx: mx.good.test\nmax_age: 86400\n',
    'mta-sts.stsbad.test': 'version: STSv1\nmode: enforce\nmx: *.good.test\nmax_age: 86400\n',
    'mta-sts.ststesting.test': 'version: STSv1\nmode: testing\nmx: mx.good.test\nmax_age: 86400\n',
  };
  const webCert = makeCert('mta-sts.sts.test', Object.keys(policies));

  before(async () => {
    world = new World({ tls: '127.0.0.82', dead: '127.0.0.83', plain: '127.0.0.84' });
    for (const d of ['sts.test', 'stsbad.test', 'ststesting.test']) {
      world.dns.add(`_mta-sts.${d}`, { type: 'TXT', data: 'v=STSv1; id=20261125T1;' }).add(`mta-sts.${d}`, { type: 'A', data: '127.0.0.85' });
    }
    world.dns
      .add('sts.test', { type: 'MX', preference: 10, exchange: 'mx.good.test' })
      .add('stsbad.test', { type: 'MX', preference: 10, exchange: 'mx.elsewhere.test' })
      .add('mx.elsewhere.test', { type: 'A', data: '127.0.0.84' })
      .add('ststesting.test', { type: 'MX', preference: 10, exchange: 'mx.elsewhere.test' });
    await world.start();
    https = createServer({ key: webCert.key, cert: webCert.cert }, (req, res) => {
      fetches.push(`${req.headers.host}${req.url}`);
      const body = policies[String(req.headers.host)];
      if (!body || req.url !== '/.well-known/mta-sts.txt') return res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
    });
    // Any port will do: Tern fetches policies from outbound.ini mta_sts_port (443 outside tests).
    const httpsPort = await listenOn(https, '127.0.0.85');
    tern = await world.tern({
      outbound: `mta_sts_port=${httpsPort}`,
      files: { 'tls.ini': '[outbound]\nca=trust.pem\n', 'trust.pem': Buffer.concat([world.cert.cert, webCert.cert]) },
    });
  });
  after(async () => {
    await tern?.stop();
    https?.close();
    await world?.stop();
  });

  it('enforce: delivers to a listed MX over verified TLS, fetching the policy once', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['one@sts.test'], body: message('sts1') });
    const d = await tern.waitFor(is('Delivery', 'one@sts.test'));
    assert.equal(d.tls, true);
    const fetched = await tern.waitFor((r) => r.msg === 'MTA-STS policy fetched' && r.domain === 'sts.test');
    assert.equal(fetched.mode, 'enforce');
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['two@sts.test'], body: message('sts2') });
    await tern.waitFor(is('Delivery', 'two@sts.test'));
    assert.equal(fetches.filter((f) => f.startsWith('mta-sts.sts.test')).length, 1, 'cached for max_age');
  });

  it('enforce: defers when no MX host matches the policy', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['x@stsbad.test'], body: message('stsbad') });
    const tf = await tern.waitFor(is('TransientFailure', 'x@stsbad.test'));
    assert.equal((tf.response as { enhanced_code: string }).enhanced_code, '4.7.5');
    assert.match((tf.response as { content: string }).content, /MTA-STS policy of stsbad\.test \(enforce\) lists none of its MX hosts mx\.elsewhere\.test/);
    assert.ok(!world.mx2.recipients().includes('x@stsbad.test'));
  });

  it('testing: delivers anyway and reports the mismatch', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['t@ststesting.test'], body: message('ststesting') });
    await tern.waitFor(is('Delivery', 't@ststesting.test'));
    const warn = await tern.waitFor((r) => r.msg === 'MTA-STS (testing): MX hosts not in the policy would be refused under enforce');
    assert.deepEqual(warn.unlisted, ['mx.elsewhere.test']);
  });
});
