import { describe, it } from 'node:test';
import { connect } from 'node:net';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { systemClock, TernError } from '../../src/core/index.js';
import type { Closable, DeliveryOutcome } from '../../src/core/index.js';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/log/index.js';
import { DiskSpool } from '../../src/spool/index.js';
import type { QueueEntry } from '../../src/spool/index.js';
import { Scheduler } from '../../src/scheduler/index.js';
import type { Deliverer } from '../../src/scheduler/index.js';
import { DeliveryAgent } from '../../src/delivery/index.js';
import { SessionPool } from '../../src/delivery/pool.js';
import { Listener } from '../../src/listener/index.js';
import { AdminApi, TernMetrics } from '../../src/control/index.js';
import { DnsResolver } from '../../src/dns/index.js';
import { startDaemon } from '../../src/daemon/index.js';
import { tempDir } from '../helpers/temp-dir.js';
import { writeConfig } from '../helpers/tern-process.js';
import { RawSmtp } from '../helpers/smtp-client.js';

const silent = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) as never });
const config = () => loadConfig(writeConfig({ 'smtp.ini': 'listen=127.0.0.1:0\n', 'http.ini': 'listen=127.0.0.1:0\n', 'dns.ini': 'servers=127.0.0.1:9\ntimeout=0.5\n' }));

/** What every refusal of a closed part looks like: a stable code and the SMTP reply a client or log gets. */
function isClosedError(err: unknown): boolean {
  return err instanceof TernError && err.code === 'TERN_ERR_CLOSED' && err.reply.code === 421 && err.reply.enhanced === '4.3.2';
}

/** undici's close-and-destroy checks, for any part. */
async function closeTwiceThenDestroy(part: Closable): Promise<void> {
  assert.equal(part.closed, false);
  const first = part.close();
  const second = part.close();
  assert.equal(first, second, 'close() twice gives the same promise');
  assert.equal(part.closed, true);
  await first;
  part.destroy();
  part.destroy();
  assert.equal(part.closed, true);
}

/** A deliverer that never answers until destroyed; the scheduler under test is real. */
class StuckDeliverer implements Deliverer {
  pending: ((o: DeliveryOutcome) => void)[] = [];
  deliver(entry: QueueEntry): Promise<DeliveryOutcome> {
    return new Promise((resolve) =>
      this.pending.push(() => resolve({ tls: false, recipients: entry.recipients.map((r) => ({ address: r.address, result: 'deferred', reply: { code: 451, text: 'cut' } })) })),
    );
  }
  destroy(): void {
    for (const settle of this.pending.splice(0)) settle({ tls: false, recipients: [] });
  }
}

async function openSpool(): Promise<DiskSpool> {
  const spool = new DiskSpool(join(tempDir('tern-close-'), 'queue'));
  await spool.open();
  return spool;
}

async function queueOne(spool: DiskSpool): Promise<QueueEntry[]> {
  const incoming = await spool.receive();
  incoming.body.write('Subject: t\r\n\r\nx\r\n');
  return incoming.commit([{ domain: 'd.test', sender: 's@x.test', recipients: [{ address: 'a@d.test', state: 'pending' }], dsn: {}, smtpUtf8: false, bodyType: '7bit' }], Date.now());
}

describe('close() and destroy(): every long-lived part', () => {
  it('listener: close twice, destroy after close, listen after close refused', async () => {
    const listener = new Listener(config(), { receive: () => Promise.reject(new Error('unused')), insert: () => Promise.reject(new Error('unused')) }, silent, systemClock);
    await listener.listen();
    await closeTwiceThenDestroy(listener);
    await assert.rejects(listener.listen(), isClosedError);
  });

  it('listener: destroy() ends a session in progress with 421 4.3.2, and close() then resolves', async () => {
    const listener = new Listener(config(), { receive: () => Promise.reject(new Error('unused')), insert: () => Promise.reject(new Error('unused')) }, silent, systemClock);
    const [{ port }] = await listener.listen();
    const client = await RawSmtp.open(port);
    assert.match(await client.command('EHLO client.test'), /^250/);
    listener.destroy();
    assert.match(await client.reply(), /^421 4\.3\.2 /);
    assert.equal(await client.reply(), '', 'and the connection is closed');
    await listener.close();
  });

  it('admin API: close twice, destroy after close, listen after close refused', async () => {
    const spool = await openSpool();
    const scheduler = new Scheduler({ config: config().outbound, spool, deliverer: new StuckDeliverer(), logger: silent, clock: systemClock });
    const admin = new AdminApi(config(), scheduler, new TernMetrics(scheduler, () => 0), silent, systemClock);
    const address = await admin.listen();
    assert.equal((await fetch(`http://127.0.0.1:${address!.port}/health`)).status, 200);
    await closeTwiceThenDestroy(admin);
    await assert.rejects(admin.listen(), isClosedError);
    await assert.rejects(fetch(`http://127.0.0.1:${address!.port}/health`), 'nothing listens any more');
  });

  it('spool: close twice, destroy after close, writes after close refused with 421 4.3.2', async () => {
    const spool = await openSpool();
    const [entry] = await queueOne(spool);
    await closeTwiceThenDestroy(spool);
    await assert.rejects(spool.receive(), isClosedError);
    await assert.rejects(spool.update(entry), isClosedError);
    await assert.rejects(spool.remove(entry), isClosedError);
    const reopened = new DiskSpool(spool.root);
    await reopened.open();
    const { recovered } = await reopened.recover({ onBatch: () => undefined });
    assert.equal(recovered, 1, 'the entry queued before the close is still there');
    await reopened.close();
  });

  it('scheduler: close twice, destroy after close, operator actions after close refused', async () => {
    const spool = await openSpool();
    const scheduler = new Scheduler({ config: config().outbound, spool, deliverer: new StuckDeliverer(), logger: silent, clock: systemClock });
    await closeTwiceThenDestroy(scheduler);
    assert.throws(() => scheduler.flush(), isClosedError);
    await assert.rejects(scheduler.hold('nothing.1'), isClosedError);
    await spool.close();
  });

  it('scheduler: destroy() aborts an attempt in flight at once; close() then resolves with it counted', async () => {
    const spool = await openSpool();
    const deliverer = new StuckDeliverer();
    const scheduler = new Scheduler({ config: config().outbound, spool, deliverer, logger: silent, clock: systemClock });
    scheduler.add(await queueOne(spool));
    while (deliverer.pending.length === 0) await new Promise((r) => setImmediate(r));
    assert.equal(scheduler.inFlightCount, 1);
    scheduler.destroy();
    assert.equal(deliverer.pending.length, 0, 'the attempt was cut off');
    const { aborted } = await scheduler.close();
    assert.equal(aborted, 1);
    await spool.close();
  });

  it('delivery agent: close twice, destroy after close, an attempt after close refused', async () => {
    const spool = await openSpool();
    const [entry] = await queueOne(spool);
    const cfg = config();
    const resolver = new DnsResolver({ servers: cfg.dns.serverList, timeoutMs: 500, cacheMaxEntries: 10, clock: systemClock });
    const agent = new DeliveryAgent(cfg, { resolver: () => resolver, bodyBytesOrStream: () => Readable.from([]), logger: silent, clock: systemClock });
    await closeTwiceThenDestroy(agent);
    await assert.rejects(agent.deliver(entry), isClosedError);
    await spool.close();
  });

  it('session pool: close twice, destroy after close, nothing handed out after close', async () => {
    const pool = new SessionPool(() => ({ idleMs: 1000, maxDeliveries: 10 }));
    const first = pool.close();
    assert.equal(pool.close(), first);
    await first;
    pool.destroy();
    assert.equal(pool.closed, true);
    assert.equal(pool.take('any'), undefined);
    assert.equal(pool.size, 0);
  });
});

/** True when a TCP connection to the port is refused. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(true));
  });
}

describe('the whole daemon', () => {
  it('shutdown() twice is one shutdown; stopped resolves; nothing listens afterwards', async () => {
    const dir = writeConfig({ 'smtp.ini': 'listen=127.0.0.1:0\n', 'http.ini': 'listen=127.0.0.1:0\n', 'dns.ini': 'servers=127.0.0.1:9\n' });
    const daemon = await startDaemon({ configDir: dir, queueDir: join(dir, 'queue'), logger: silent });
    const smtp = daemon.addresses[0].port;
    const admin = daemon.admin!.port;
    const client = await RawSmtp.open(smtp);
    assert.match(await client.command('EHLO client.test'), /^250/);
    const first = daemon.shutdown();
    assert.equal(daemon.shutdown(), first);
    await daemon.stopped;
    assert.match(await client.reply(), /^421 4\.3\.2 /, 'an idle session left at the end is told 421 and closed');
    assert.ok(await refused(smtp));
    assert.ok(await refused(admin));
  });
});
