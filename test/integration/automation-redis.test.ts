import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { Automation, AutomationCounter, RedisLink } from '../../src/cluster/index.js';
import type { Firing } from '../../src/cluster/index.js';
import { parseAutomation, redisMainSchema } from '../../src/config/index.js';
import { systemClock } from '../../src/core/index.js';
import type { DeliveryOutcome, SmtpReply } from '../../src/core/index.js';
import { recordingLogger } from '../helpers/recording-logger.js';
import { RedisServer } from '../helpers/redis-server.js';

/** Polls until `check` holds (no time is asserted). */
async function until(check: () => boolean, what: string, withinMs = 15_000): Promise<void> {
  const end = Date.now() + withinMs;
  while (!check()) {
    if (Date.now() > end) assert.fail(`not within ${withinMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const RULES = parseAutomation('[ts04]\nmatch=\\[TS04\\]\nthreshold=3\nwindow=10m\naction=suspend\nduration=2h\n').rules;
const reply: SmtpReply = { code: 421, enhanced: '4.7.0', text: '[TS04] Messages temporarily deferred', remote: { name: 'mx.slow.test', address: '192.0.2.1' } };
const outcome: DeliveryOutcome = { recipients: [{ address: 'u@slow.test', result: 'deferred', reply }], tls: false };

/** One node's automation as policy-parts wires it: a RedisLink, the counter, the rules; its firings and log records kept. */
class Node {
  readonly link: RedisLink;
  readonly automation: Automation;
  readonly firings: Firing[] = [];
  readonly records: Record<string, unknown>[];

  constructor(url: string, readonly id: string) {
    const { logger, records } = recordingLogger();
    this.records = records;
    this.link = new RedisLink({ settings: redisMainSchema.parse({ enabled: 'true', url, command_timeout: '300', key_prefix: 'ar:' }), nodeId: id, logger });
    this.automation = new Automation({ rules: () => RULES, counter: new AutomationCounter(systemClock, this.link), logger, clock: systemClock, nodeId: id, fire: async (f) => void this.firings.push(f) });
  }

  fired(): Record<string, unknown>[] {
    return this.records.filter((r) => r.event === 'automation_fired');
  }

  async close(): Promise<void> {
    this.automation.close();
    await this.link.close();
  }
}

describe('automation counted in a real Redis that stops answering mid-call', () => {
  let redis: RedisServer;
  let raw: Redis;
  const nodes: Node[] = [];
  before(async () => {
    redis = await RedisServer.start();
    raw = new Redis(redis.url);
  });
  after(async () => {
    for (const n of nodes) await n.close();
    raw.disconnect();
    await redis.stop();
  });

  test('the counting call that fires the rule runs on a Redis SIGSTOPped past command_timeout: the node hears it when Redis answers, and the rule fires once in the cluster', async () => {
    const [a, b] = [new Node(redis.url, 'a'), new Node(redis.url, 'b')];
    nodes.push(a, b);
    assert.equal(await a.link.ready(5000), true);
    assert.equal(await b.link.ready(5000), true);
    const hits = 'ar:{slow.test}:auto:ts04:hits';
    const marker = 'ar:{slow.test}:auto:ts04:fired';
    a.automation.observe('slow.test', 'e1', outcome);
    b.automation.observe('slow.test', 'e2', outcome);
    const counted = async (n: number) => {
      for (let i = 0; i < 400 && (await raw.zcard(hits)) < n; i++) await new Promise((r) => setTimeout(r, 25));
      assert.equal(await raw.zcard(hits), n);
    };
    await counted(2);
    // The third match's call is sent to a Redis that answers nothing: a's call times out.
    redis.pause();
    a.automation.observe('slow.test', 'e3', outcome);
    await until(() => !a.link.up, 'a sees Redis down (its call timed out)');
    assert.equal(a.firings.length, 0, 'not fired while unheard (one local match is below the threshold)');
    redis.resume();
    // Redis runs the late call (the marker is a's member), then answers a's probe: a asks again with that member.
    await until(() => a.firings.length === 1, 'a fires the rule once Redis answers');
    const member = await raw.get(marker);
    assert.ok(member?.startsWith('a|e3|'), `the marker is a's third call (${member})`);
    assert.equal(await raw.exists(hits), 0, 'the late call cleared the hits');
    // Later matches anywhere are muted by the marker, and asking again does not fire twice.
    await until(() => b.link.up, 'b back on Redis');
    b.automation.observe('slow.test', 'e4', outcome);
    a.automation.observe('slow.test', 'e5', outcome);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(a.firings.length + b.firings.length, 1, 'one firing in the cluster');
    assert.equal(a.fired().length + b.fired().length, 1, 'one automation_fired record in the cluster');
    assert.equal(a.fired()[0].counted, 'cluster');
    assert.equal(a.firings[0].domain, 'slow.test');
  });
});
