import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SMTPServer } from 'smtp-server';
import { World } from '../helpers/world.js';
import { TestMx } from '../helpers/mx-server.js';
import { listenOn } from '../helpers/ports.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { is } from '../helpers/tern-process.js';
import type { TernProcess } from '../helpers/tern-process.js';


describe('connection reuse', () => {
  let world: World;
  let tern: TernProcess;

  before(async () => {
    world = await new World({ tls: '127.0.0.97', dead: '127.0.0.98', plain: '127.0.0.99' }).start();
    tern = await world.tern({
      outbound: 'max_deliveries_per_connection=2\nidle_timeout=1s',
      files: { 'routes.ini': '[other.test]\nmax_deliveries_per_connection=1\n' },
    });
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
  });

  it('carries on with the next entry over the same session, up to max_deliveries_per_connection, then QUITs when idle', async () => {
    for (const n of [1, 2, 3]) {
      await sendMail({ port: tern.port, from: 'a@client.test', to: [`reuse${n}@good.test`], body: message(`reuse${n}`) });
      const d = await tern.waitFor(is('Delivery', `reuse${n}@good.test`));
      assert.equal(d.tls, true, 'a reused session keeps its TLS');
    }
    assert.equal(world.mx.connections, 2, 'messages 1 and 2 shared a session; the third needed a new one');
    await new Promise((r) => setTimeout(r, 1500));
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['reuse4@good.test'], body: message('reuse4') });
    await tern.waitFor(is('Delivery', 'reuse4@good.test'));
    assert.equal(world.mx.connections, 3, 'the idle session was closed after idle_timeout');
    const metrics = await (await fetch(`${tern.api}/metrics`)).text();
    assert.match(metrics, /^tern_outbound_connections_open 1$/m, 'the last session waits idle in the pool');
  });

  it('takes max_deliveries_per_connection per domain from routes.ini', async () => {
    for (const n of [1, 2]) {
      await sendMail({ port: tern.port, from: 'a@client.test', to: [`one${n}@other.test`], body: message(`one${n}`) });
      await tern.waitFor(is('Delivery', `one${n}@other.test`));
    }
    assert.equal(world.mx2.connections, 2, 'one transaction per session for other.test');
  });
});

describe('per-destination limits and backoff', () => {
  let world: World;
  let tern: TernProcess;
  let slow: SMTPServer;
  const transactions = { now: 0, max: 0 };
  let down: TestMx;

  before(async () => {
    world = new World({ tls: '127.0.0.94', dead: '127.0.0.95', plain: '127.0.0.96' });
    world.dns
      .add('slow.test', { type: 'MX', preference: 10, exchange: 'mx.slow.test' })
      .add('mx.slow.test', { type: 'A', data: '127.0.0.92' })
      .add('down.test', { type: 'MX', preference: 10, exchange: 'mx.down.test' })
      .add('mx.down.test', { type: 'A', data: '127.0.0.93' });
    await world.start();
    down = new TestMx('127.0.0.93', world.port, { greeting: { code: 421, text: '4.3.2 Service not available, closing channel' } });
    await down.start();
    // Holds every message for 300 ms and counts transactions in progress at once.
    slow = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      logger: false,
      onMailFrom: (_a, _s, cb) => {
        transactions.now++;
        transactions.max = Math.max(transactions.max, transactions.now);
        cb();
      },
      onData: (stream, _s, cb) => {
        stream.resume();
        stream.on('end', () =>
          setTimeout(() => {
            transactions.now--;
            cb(null, '2.0.0 slowly queued');
          }, 300),
        );
      },
    });
    await listenOn(slow.server, '127.0.0.92', world.port);
    tern = await world.tern({
      outbound: 'temp_fail_intervals=1s*10\ndestination_backoff_min=2s\ndestination_backoff_max=10s',
      files: { 'routes.ini': '[slow.test]\nmax_connections=2\n' },
    });
  });
  after(async () => {
    await tern?.stop();
    slow?.close();
    await down?.stop();
    await world?.stop();
  });

  it('keeps at most max_connections attempts in flight to one domain', async () => {
    await Promise.all([1, 2, 3, 4, 5, 6].map((n) => sendMail({ port: tern.port, from: 'a@client.test', to: [`s${n}@slow.test`], body: message(`slow${n}`) })));
    for (const n of [1, 2, 3, 4, 5, 6]) await tern.waitFor(is('Delivery', `s${n}@slow.test`));
    assert.equal(transactions.max, 2);
  });

  it('backs a dead destination off as a whole, probes it once, and recovers when it answers', async () => {
    await sendMail({ port: tern.port, from: 'a@client.test', to: ['d0@down.test'], body: message('down0') });
    const first = await tern.waitFor(is('TransientFailure', 'd0@down.test'));
    assert.equal((first.response as { code: number }).code, 421);
    for (const n of [1, 2, 3, 4]) await sendMail({ port: tern.port, from: 'a@client.test', to: [`d${n}@down.test`], body: message(`down${n}`) });
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(down.connections, 1, 'no stampede while the destination is backed off');
    assert.equal(tern.dispositions('TransientFailure').filter((r) => String(r.recipient).endsWith('@down.test')).length, 1);
    down.greeting = undefined;
    for (const n of [0, 1, 2, 3, 4]) await tern.waitFor(is('Delivery', `d${n}@down.test`), 20000);
    assert.ok(down.connections <= 6, `one failed attempt, one probe, then at most one session per entry (${down.connections})`);
  });
});
