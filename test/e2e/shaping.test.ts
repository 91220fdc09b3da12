import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { RecordingMx } from '../helpers/recording-mx.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import type { LogRecord, TernProcess } from '../helpers/tern-process.js';

interface Listed {
  id: string;
  domain: string;
  attempts: number;
  waiting: string | null;
}

const LIMITS = (live: string) =>
  [
    '[conn.test]',
    'max_connections=2',
    '[rate.test]',
    'max_message_rate=5/s',
    'burst=2',
    '[live.test]',
    `max_message_rate=${live}`,
    '[deliv.test]',
    'max_connections=1',
    'max_deliveries_per_connection=3',
    '[mx:*.site.test]',
    'max_connections=1',
    '',
  ].join('\n');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Issue #16: limits.ini shapes what each destination sees, parked entries cost nothing, and operators see why mail waits. */
describe('traffic shaping (limits.ini)', () => {
  let world: World;
  let tern: TernProcess;
  const sinks = {
    conn: new RecordingMx('127.0.0.164', 0, { dataDelayMs: 300 }),
    rate: new RecordingMx('127.0.0.165'),
    live: new RecordingMx('127.0.0.166'),
    deliv: new RecordingMx('127.0.0.167'),
    site: new RecordingMx('127.0.0.168', 0, { dataDelayMs: 200 }),
  };

  before(async () => {
    world = await new World({ tls: '127.0.0.161', dead: '127.0.0.162', plain: '127.0.0.163' }).start();
    for (const [name, sink] of Object.entries(sinks)) {
      sink.port = world.port;
      await sink.start();
      world.dns.add(`${name}.test`, { type: 'MX', preference: 10, exchange: `mx.${name}.test` }).add(`mx.${name}.test`, { type: 'A', data: sink.host });
    }
    // Two tenants of one provider: MX names of their own, one server behind them.
    for (const tenant of ['one', 'two']) {
      world.dns.add(`${tenant}.test`, { type: 'MX', preference: 10, exchange: `${tenant}-test.site.test` }).add(`${tenant}-test.site.test`, { type: 'A', data: sinks.site.host });
    }
    tern = await world.tern({ files: { 'limits.ini': LIMITS('1/h') } });
  });
  after(async () => {
    await tern?.stop();
    await Promise.all(Object.values(sinks).map((s) => s.stop()));
    await world?.stop();
  });

  const send = async (domain: string, n: number) => {
    for (let i = 1; i <= n; i++) await sendMail({ port: tern.port, from: 'a@client.test', to: [`r${i}@${domain}`], body: message(`${domain}-${i}`) });
  };
  const listed = async (domain: string): Promise<Listed[]> => ((await (await fetch(`${tern.api}/queue?domain=${domain}`)).json()) as { entries: Listed[] }).entries;
  /** Polls the queue view until some entry of the domain waits for `why`. */
  const seenWaiting = async (domain: string, why: string): Promise<Listed[]> => {
    for (let i = 0; i < 200; i++) {
      const entries = await listed(domain);
      const parked = entries.filter((e) => e.waiting === why);
      if (parked.length > 0) return parked;
      await sleep(25);
    }
    throw new Error(`no entry of ${domain} shown as ${why}`);
  };
  const parkedGauge = async (reason: string) => {
    const text = await (await fetch(`${tern.api}/metrics`)).text();
    return Number(new RegExp(`^tern_queue_parked_entries\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text)?.[1]);
  };
  const about = (domain: string) => (r: LogRecord) => typeof r.recipient === 'string' && r.recipient.endsWith(`@${domain}`);

  it('never opens more than max_connections sessions, uses them all while mail waits, and parks the rest unattempted', async () => {
    await send('conn.test', 10);
    const parked = await seenWaiting('conn.test', 'connection limit');
    assert.ok(parked.every((e) => e.attempts === 0), 'waiting for a slot costs no attempt');
    assert.ok((await parkedGauge('connection_limit')) >= 1, 'the gauge counts them');
    await sinks.conn.waitForArrivals(10);
    assert.equal(sinks.conn.maxConcurrent(), 2, 'two sessions at once, never three');
    await tern.waitForCount((r) => r.type === 'Delivery' && about('conn.test')(r), 10);
    assert.equal(tern.records.filter((r) => about('conn.test')(r) && r.type !== 'Reception' && r.type !== 'Delivery').length, 0, 'nothing logged per parked entry');
  });

  it('holds the message rate: no 1-s window above rate + burst, the whole spread as the rate asks', async () => {
    await send('rate.test', 16);
    const parked = await seenWaiting('rate.test', 'rate limited');
    assert.ok(parked.every((e) => e.attempts === 0), 'waiting for a token costs no attempt');
    await sinks.rate.waitForArrivals(16);
    const windows = sinks.rate.windowCounts(1000, 50);
    // 5/s with a burst of 2: at most 7 in any second; one more for the way from Tern to the sink.
    assert.ok(Math.max(...windows) <= 8, `windows of 1 s held ${Math.max(...windows)} messages`);
    const times = sinks.rate.arrivals.map((a) => a.at);
    // 16 messages, 2 at once, then 5 a second: 2.8 s from the first to the last; 2 s leaves a margin.
    assert.ok(Math.max(...times) - Math.min(...times) >= 2000, 'spread over the time the rate asks for');
    assert.equal(tern.dispositions('TransientFailure').filter(about('rate.test')).length, 0);
  });

  it('applies a change of limits.ini to the entries already waiting', async () => {
    await send('live.test', 3);
    await sinks.live.waitForArrivals(1);
    const parked = await seenWaiting('live.test', 'rate limited');
    assert.equal(parked.length, 2, 'at 1/h the second and third wait');
    assert.ok(parked.every((e) => e.attempts === 0));
    writeFileSync(join(tern.configDir, 'limits.ini'), LIMITS('100/s'));
    await tern.waitFor((r) => r.msg === 'config reloaded' && (r.files as string[]).includes('limits.ini'));
    await sinks.live.waitForArrivals(3, 10_000);
  });

  it('closes a session after max_deliveries_per_connection transactions', async () => {
    await send('deliv.test', 7);
    await sinks.deliv.waitForArrivals(7);
    const counts = sinks.deliv.sessions.map((s) => s.transactions);
    assert.ok(counts.every((n) => n <= 3), `transactions per session: ${counts.join(', ')}`);
    assert.ok(counts.includes(3), `sessions were reused up to the limit: ${counts.join(', ')}`);
    assert.equal(sinks.deliv.maxConcurrent(), 1);
  });

  it('keys domains by their MX hosts with an [mx:pattern] section: two tenants share one connection', async () => {
    await send('one.test', 3);
    await send('two.test', 3);
    await sinks.site.waitForArrivals(6);
    assert.equal(sinks.site.maxConcurrent(), 1, 'one session at a time for both domains together');
    const domains = new Set(sinks.site.arrivals.map((a) => a.recipients[0].split('@')[1]));
    assert.deepEqual([...domains].sort(), ['one.test', 'two.test']);
  });
});
