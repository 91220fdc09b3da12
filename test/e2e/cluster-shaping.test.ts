import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { RecordingMx } from '../helpers/recording-mx.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import type { TernProcess } from '../helpers/tern-process.js';

const queuedAs = (response: string) => /Queued as (\S+)/.exec(response)![1];
const shardOf = (id: string) => /S(\d+)(?:\.\d+)?$/.exec(id)?.[1];

/**
 * Issue #16: with `nodes=2` a limit of limits.ini holds for the machine, not per worker:
 * the workers take their slots and tokens from the primary.
 */
describe('nodes=2: limits.ini holds for the whole machine', () => {
  let world: World;
  let tern: TernProcess;
  const conn = new RecordingMx('127.0.0.184', 0, { dataDelayMs: 300 });
  const rate = new RecordingMx('127.0.0.185');

  before(async () => {
    world = await new World({ tls: '127.0.0.186', dead: '127.0.0.187', plain: '127.0.0.188' }).start();
    for (const [name, sink] of [['conn', conn], ['rate', rate]] as const) {
      sink.port = world.port;
      await sink.start();
      world.dns.add(`${name}.test`, { type: 'MX', preference: 10, exchange: `mx.${name}.test` }).add(`mx.${name}.test`, { type: 'A', data: sink.host });
    }
    const limits = ['[conn.test]', 'max_connections=1', '[rate.test]', 'max_message_rate=4/s', 'burst=1', ''].join('\n');
    // Delivery starts once both workers hold mail, so that both want the destination at once.
    tern = await world.tern({ smtp: 'nodes=2', outbound: 'disabled=true', files: { 'limits.ini': limits } });
  });
  after(async () => {
    await tern?.stop();
    await conn.stop();
    await rate.stop();
    await world?.stop();
  });

  /** One message a connection: round robin spreads them over the workers. */
  const fill = async (domain: string, n: number): Promise<string[]> => {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push(queuedAs((await sendMail({ port: tern.port, from: 'app@sender.test', to: [`r${i}@${domain}`], body: message(`${domain}-${i}`) })).response));
    return ids;
  };

  it('one connection for two workers, and a rate both workers share', async () => {
    const connIds = await fill('conn.test', 8);
    const rateIds = await fill('rate.test', 12);
    assert.deepEqual(new Set([...connIds, ...rateIds].map(shardOf)), new Set(['0', '1']), 'both workers hold mail for both destinations');
    // Each worker watches config/ and applies the change itself.
    writeFileSync(join(tern.configDir, 'outbound.ini'), world.configFiles()['outbound.ini']);
    await conn.waitForArrivals(8, 60_000);
    await rate.waitForArrivals(12, 60_000);
    assert.equal(conn.maxConcurrent(), 1, 'max_connections=1 over both workers: never two sessions at once');
    // 4/s with a burst of 1 over the machine: at most 5 in any second (one for the way to the
    // sink); per worker it would be 10.
    const windows = rate.windowCounts(1000, 50);
    assert.ok(Math.max(...windows) <= 6, `1-s windows held up to ${Math.max(...windows)} messages`);
    const times = rate.arrivals.map((a) => a.at);
    // 12 messages at 4/s take 2.75 s from the first to the last; per worker they would take half.
    assert.ok(Math.max(...times) - Math.min(...times) >= 2000, 'spread over the time the machine-wide rate asks for');
  });
});
