import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { Automation, AutomationCounter, OverrideTable, PolicySync, RedisLink } from '../../src/cluster/index.js';
import { loadConfig, parseAutomation, redisMainSchema } from '../../src/config/index.js';
import { systemClock } from '../../src/core/index.js';
import type { Clock } from '../../src/core/index.js';
import type { SmtpReply } from '../../src/core/index.js';
import { createLogger } from '../../src/log/index.js';
import { DestinationPolicy, OverrideFile, Overrides, Scheduler, SuspensionFile } from '../../src/scheduler/index.js';
import { MemorySpool } from '../../src/spool/index.js';
import { RedisServer } from '../helpers/redis-server.js';
import { tempDir } from '../helpers/temp-dir.js';
import { writeConfig } from '../helpers/tern-process.js';

const silent = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) as never });
const outbound = loadConfig(writeConfig({})).outbound;

/** Polls until `check` holds (a change travels through Redis; no time is asserted). */
async function until(check: () => boolean, what: string, withinMs = 10_000): Promise<void> {
  const end = Date.now() + withinMs;
  while (!check()) {
    if (Date.now() > end) assert.fail(`not within ${withinMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** One node's policy as the daemon builds it: a real scheduler, its files, a RedisLink and the sync. */
class Node {
  readonly link: RedisLink;
  readonly scheduler: Scheduler;
  readonly overrides: Overrides;
  readonly policy: DestinationPolicy;
  readonly sync: PolicySync;

  constructor(
    url: string,
    readonly id: string,
    readonly dir = tempDir('tern-policy-'),
    checkEveryMs = 60_000,
    clock: Clock = systemClock,
  ) {
    this.link = new RedisLink({ settings: redisMainSchema.parse({ enabled: 'true', url, command_timeout: '300', key_prefix: 'ps:' }), nodeId: id, logger: silent });
    const spool = new MemorySpool();
    this.scheduler = new Scheduler({ config: outbound, spool, deliverer: { deliver: async () => ({ recipients: [], tls: false }), destroy: () => undefined }, logger: silent, clock, suspensions: new SuspensionFile(this.dir) });
    // As policy-parts wires it: the shared records run on Redis's time as this node reckons it.
    const policyClock: Clock = { now: () => this.sync?.redisNow() ?? clock.now() };
    this.overrides = new Overrides({ table: new OverrideTable(policyClock), store: new OverrideFile(this.dir), clock: policyClock, logger: silent, reshape: () => this.scheduler.reshape() });
    this.policy = new DestinationPolicy(this.scheduler, this.overrides, policyClock, silent);
    this.sync = new PolicySync({ link: this.link, local: this.policy, logger: silent, clock, checkEveryMs });
    this.policy.onChange((c) => this.sync.announce(c));
    this.sync.start();
  }

  suspended(domain: string) {
    return this.policy.suspensions().find((s) => s.domain === domain);
  }

  async close(): Promise<void> {
    this.sync.close();
    this.overrides.close();
    await this.sync.settled();
    await this.scheduler.close();
    await this.link.close();
  }
}

describe('policy sync: suspensions and overrides shared through a real Redis', () => {
  let redis: RedisServer;
  const nodes: Node[] = [];
  const node = async (id: string, dir?: string, checkEveryMs?: number, clock?: Clock) => {
    const n = new Node(redis.url, id, dir, checkEveryMs, clock);
    nodes.push(n);
    assert.equal(await n.link.ready(5000), true);
    return n;
  };
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    for (const n of nodes) await n.close();
    await redis.stop();
  });

  test('a suspension on one node reaches the others through the subscription; resume on another lifts it everywhere', async () => {
    const [a, b, c] = [await node('a'), await node('b'), await node('c')];
    await Promise.all([a, b, c].map((n) => n.sync.settled()));
    const s = await a.policy.suspend('yahoo.com', { durationMs: 600_000, reason: 'x' });
    await until(() => b.suspended('yahoo.com') !== undefined && c.suspended('yahoo.com') !== undefined, 'b and c suspend yahoo.com');
    assert.equal(b.suspended('yahoo.com')!.until, s.until, 'the same end everywhere, not counted again from now');
    assert.equal(c.suspended('yahoo.com')!.reason, 'x');
    await b.policy.resume('yahoo.com');
    await until(() => a.suspended('yahoo.com') === undefined && c.suspended('yahoo.com') === undefined, 'a and c resume yahoo.com');
    await a.policy.override('mx:*.outlook.com', { maxConnections: 1, durationMs: 600_000, reason: 'slow down' });
    await until(() => c.policy.overrides().some((o) => o.destination === 'mx:*.outlook.com' && o.maxConnections === 1), 'c holds the override');
    await c.policy.clear('mx:*.outlook.com');
    await until(() => a.policy.overrides().length === 0 && b.policy.overrides().length === 0, 'the override is cleared everywhere');
  });

  test('a lost message is caught by the epoch check', async () => {
    const d = await node('d', undefined, 300);
    await d.sync.settled();
    // A change written as a node writes it, without its PUBLISH (the message that got lost).
    const raw = new Redis(redis.url);
    try {
      const now = Date.now();
      await raw.hset('ps:{policy}:records', 'suspension|lost.test', JSON.stringify({ changed: now, until: now + 600_000, record: { domain: 'lost.test', reason: 'no message', since: now, until: now + 600_000 } }));
      await raw.incr('ps:{policy}:epoch');
    } finally {
      raw.disconnect();
    }
    await until(() => d.suspended('lost.test') !== undefined, 'd finds the suspension by its epoch check');
    await d.policy.resume('lost.test');
  });

  test('a change made while Redis is away applies at once and is written when it is back; the later change wins', async () => {
    const [e, f] = [await node('e', undefined, 300), await node('f', undefined, 300)];
    await Promise.all([e.sync.settled(), f.sync.settled()]);
    await e.policy.suspend('both.test', { durationMs: 600_000, reason: 'before' });
    await until(() => f.suspended('both.test') !== undefined, 'f has it');
    redis.pause();
    await until(() => !e.link.up && !f.link.up, 'both links see Redis down');
    await e.policy.suspend('outage.test', { durationMs: 600_000, reason: 'during the outage' });
    assert.ok(e.suspended('outage.test'), 'applied locally at once');
    // Both change both.test while apart: e lifts it, f (later) suspends it again with a new reason.
    await e.policy.resume('both.test');
    await new Promise((r) => setTimeout(r, 20));
    await f.policy.suspend('both.test', { durationMs: 600_000, reason: 'later' });
    redis.resume();
    await until(() => f.suspended('outage.test')?.reason === 'during the outage', 'f gets the change made during the outage');
    await until(() => e.suspended('both.test')?.reason === 'later' && f.suspended('both.test')?.reason === 'later', 'the later change stands on both');
    await e.policy.resume('outage.test');
    await e.policy.resume('both.test');
    await until(() => f.suspended('both.test') === undefined && f.suspended('outage.test') === undefined, 'lifted on f');
  });

  test('the local copy holds through a restart, and is written back to a Redis that lost its data', async () => {
    const dir = tempDir('tern-policy-');
    const g = await node('g', dir, 300);
    const h = await node('h', undefined, 300);
    await g.policy.suspend('kept.test', { durationMs: 600_000, reason: 'kept' });
    await g.policy.override('kept.test', { maxMessageRate: { count: 1, perMs: 60_000 }, durationMs: 600_000, reason: 'slow' });
    await until(() => h.suspended('kept.test') !== undefined && h.policy.overrides().length > 0, 'h has both');
    await g.close();
    nodes.splice(nodes.indexOf(g), 1);
    await redis.restart();
    // g again, from its queue directory: its suspension and override are there before Redis answers.
    const again = new Node(redis.url, 'g', dir, 300);
    nodes.push(again);
    assert.equal(again.suspended('kept.test')?.reason, 'kept');
    assert.equal(again.policy.overrides()[0]?.reason, 'slow');
    await until(() => again.link.up && h.link.up, 'both back on Redis');
    const raw = new Redis(redis.url);
    try {
      let fields: string[] = [];
      const end = Date.now() + 10_000;
      while (fields.length < 2 && Date.now() < end) {
        fields = Object.keys(await raw.hgetall('ps:{policy}:records'));
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(fields.sort(), ['override|kept.test', 'suspension|kept.test'], 'written back from the local copies');
    } finally {
      raw.disconnect();
    }
    assert.ok(h.suspended('kept.test'), 'h kept it throughout');
    await again.policy.resume('kept.test');
    await again.policy.clear('kept.test');
    await until(() => h.suspended('kept.test') === undefined && h.policy.overrides().length === 0, 'lifted on h');
  });

  test('nodes whose clocks differ agree on the last change: a suspension on a slow node after a lift elsewhere holds everywhere, a lift after a fast node\'s suspension lifts it there', async () => {
    const slow = await node('slow', undefined, 300, { now: () => Date.now() - 5000 });
    const fast = await node('fast', undefined, 300, { now: () => Date.now() + 5000 });
    const b = await node('clockb', undefined, 300);
    await Promise.all([slow, fast, b].map((n) => n.sync.settled()));
    // b suspends and lifts; a second later the slow node suspends: the last change, by Redis's time.
    await b.policy.suspend('skew.test', { durationMs: 600_000, reason: 'first' });
    await until(() => slow.suspended('skew.test') !== undefined, 'slow has the first suspension');
    await b.policy.resume('skew.test');
    await until(() => slow.suspended('skew.test') === undefined, 'slow has the lift');
    await new Promise((r) => setTimeout(r, 1000));
    await slow.policy.suspend('skew.test', { durationMs: 600_000, reason: 'last' });
    await until(() => b.suspended('skew.test')?.reason === 'last' && fast.suspended('skew.test')?.reason === 'last', 'the slow node\'s later suspension reaches b and fast');
    assert.equal(slow.suspended('skew.test')?.reason, 'last');
    // The fast node suspends, b lifts a moment later: lifted on the fast node too, not written back.
    await fast.policy.suspend('fast.test', { durationMs: 600_000, reason: 'fast' });
    await until(() => b.suspended('fast.test') !== undefined, 'b has the fast node\'s suspension');
    await b.policy.resume('fast.test');
    await until(() => fast.suspended('fast.test') === undefined && slow.suspended('fast.test') === undefined, 'the lift stands on the fast node');
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(b.suspended('fast.test'), undefined, 'nothing wrote the suspension back');
    await b.policy.resume('skew.test');
  });

  test('expiry is judged by Redis\'s time: a node whose clock runs 2 minutes fast does not drop a live suspension or override, one 2 minutes slow does not write them back once lapsed', async () => {
    const fast = await node('fast2', undefined, 200, { now: () => Date.now() + 120_000 });
    const slow = await node('slow2', undefined, 200, { now: () => Date.now() - 120_000 });
    const b = await node('clock2b', undefined, 200);
    await Promise.all([fast, slow, b].map((n) => n.sync.settled()));
    const raw = new Redis(redis.url);
    const fields = ['suspension|lapse.test', 'override|lapse.test'];
    // Redis's time and both fields, read at once.
    const look = async () => {
      const [[, t], [, s], [, o]] = (await raw.multi().time().hget('ps:{policy}:records', fields[0]).hget('ps:{policy}:records', fields[1]).exec()) as [[unknown, [string, string]], [unknown, string | null], [unknown, string | null]];
      return { now: Number(t[0]) * 1000 + Math.floor(Number(t[1]) / 1000), held: [s !== null, o !== null] };
    };
    // Every node reloads (the epoch moved), as at any change made elsewhere.
    const stir = async () => {
      await raw.incr('ps:{policy}:epoch');
      await new Promise((r) => setTimeout(r, 250));
    };
    try {
      const s = await b.policy.suspend('lapse.test', { durationMs: 4000, reason: 'short' });
      await b.policy.override('lapse.test', { maxConnections: 1, durationMs: 4000, reason: 'short' });
      await until(() => slow.suspended('lapse.test') !== undefined && slow.policy.overrides().length > 0, 'the slow node holds both');
      let looked = 0;
      for (let l = await look(); l.now < s.until! - 300; l = await look()) {
        assert.deepEqual(l.held, [true, true], 'live by Redis\'s time, so still in Redis after the fast node\'s reloads');
        looked++;
        await stir();
      }
      assert.ok(looked > 0, 'Redis was looked at while the records lived');
      // Lapsed by Redis's time: dropped by a reload, and the slow node (its own clock says 2 minutes to go) does not write them back.
      for (let l = await look(), end = Date.now() + 15_000; l.held.some(Boolean); l = await look()) {
        if (Date.now() > end) assert.fail('the lapsed records stay in Redis');
        await stir();
      }
      for (let i = 0; i < 6; i++) {
        await stir();
        assert.deepEqual((await look()).held, [false, false], 'not written back');
      }
      assert.equal(slow.suspended('lapse.test'), undefined, 'lifted on the slow node too');
      assert.equal(slow.policy.overrides().find((o) => o.destination === 'lapse.test'), undefined);
    } finally {
      raw.disconnect();
    }
  });

  test('a node restarted during an outage, its clock 2 minutes slow, holds its copies until Redis answers, then writes back only what is live by Redis\'s time and lifts the rest', async () => {
    const dir = tempDir('tern-policy-');
    const slowClock = { now: () => Date.now() - 120_000 };
    const k = await node('late', dir, 200, slowClock);
    await k.sync.settled();
    await k.policy.suspend('gone.test', { durationMs: 1500, reason: 'short' });
    await k.policy.suspend('stays.test', { durationMs: 600_000, reason: 'long' });
    await k.sync.settled();
    await k.close();
    nodes.splice(nodes.indexOf(k), 1);
    // Redis loses its data and stops answering; the node starts again meanwhile.
    await redis.restart();
    redis.pause();
    const again = new Node(redis.url, 'late', dir, 200, slowClock);
    nodes.push(again);
    assert.equal(again.suspended('gone.test')?.reason, 'short', 'the local copy applies before Redis answers');
    assert.equal(again.suspended('stays.test')?.reason, 'long');
    const raw = new Redis(redis.url, { lazyConnect: true });
    try {
      // gone.test is over by Redis's time (its clock says 2 minutes to go) before Redis answers again.
      await new Promise((r) => setTimeout(r, 2000));
      redis.resume();
      await raw.connect();
      await until(() => again.link.up, 'back on Redis');
      let fields: string[] = [];
      for (let end = Date.now() + 10_000; !fields.includes('suspension|stays.test') && Date.now() < end; ) {
        fields = Object.keys(await raw.hgetall('ps:{policy}:records'));
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(fields.includes('suspension|stays.test'), 'the live suspension is written back');
      await until(() => again.suspended('gone.test') === undefined, 'the lapsed one lifts on the slow node');
      for (let i = 0; i < 4; i++) {
        await raw.incr('ps:{policy}:epoch');
        await new Promise((r) => setTimeout(r, 250));
        assert.equal(await raw.hget('ps:{policy}:records', 'suspension|gone.test'), null, 'the lapsed one is never written back');
      }
      await again.policy.resume('stays.test');
    } finally {
      raw.disconnect();
    }
  });

  test('a change Redis refuses while it stays up (OOM) is written once Redis takes writes again', async () => {
    const [w, x] = [await node('w', undefined, 300), await node('x', undefined, 300)];
    await Promise.all([w.sync.settled(), x.sync.settled()]);
    const raw = new Redis(redis.url);
    try {
      await raw.config('SET', 'maxmemory-policy', 'noeviction');
      await raw.config('SET', 'maxmemory', '1');
      await w.policy.suspend('oom.test', { durationMs: 600_000, reason: 'refused at first' });
      await w.sync.settled();
      assert.equal(await raw.hget('ps:{policy}:records', 'suspension|oom.test'), null, 'Redis refused the write');
      assert.ok(w.link.up, 'the link stays up');
    } finally {
      await raw.config('SET', 'maxmemory', '0');
      raw.disconnect();
    }
    await until(() => x.suspended('oom.test') !== undefined, 'x gets the suspension once Redis takes writes');
    await w.policy.resume('oom.test');
  });

  test('a bad record in Redis is skipped alone: the others apply, and a negative rate never becomes the lower one', async () => {
    const v = await node('v', undefined, 300);
    await v.sync.settled();
    const raw = new Redis(redis.url);
    try {
      const now = Date.now();
      const until = now + 600_000;
      const put = (field: string, record: object) => raw.hset('ps:{policy}:records', field, JSON.stringify({ changed: now, until, record }));
      await put('suspension|long.test', { domain: 'long.test', reason: 'r'.repeat(600), since: now, until });
      await put('override|neg.test', { destination: 'neg.test', maxMessageRate: { count: -5, perMs: 1000 }, reason: '', since: now, until });
      await put('suspension|bad..test', { domain: 'bad..test', reason: '', since: now, until });
      await put('suspension|good.test', { domain: 'good.test', reason: 'fine', since: now, until });
      await raw.incr('ps:{policy}:epoch');
    } finally {
      raw.disconnect();
    }
    await until(() => v.suspended('good.test') !== undefined, 'the good record applies');
    assert.equal(v.suspended('long.test'), undefined);
    assert.equal(v.suspended('bad..test'), undefined);
    assert.equal(v.policy.overrides().find((o) => o.destination === 'neg.test'), undefined, 'a negative rate is not taken');
    await v.policy.resume('good.test');
  });

  test('an operator who lifts a rule\'s suspension early on another node lets the rule fire again', async () => {
    const rules = parseAutomation('[once]\nmatch=\\[TS04\\]\nthreshold=1\nwindow=10m\naction=suspend\nduration=2h\n').rules;
    const [s1, s2] = [await node('s1'), await node('s2')];
    const firings: string[] = [];
    const automations = [s1, s2].map((n) => {
      const counter = new AutomationCounter(systemClock, n.link);
      // As policy-parts wires it.
      n.policy.onRuleLift(({ rule, destination, here }) => void counter.forget(rule, destination, here));
      return new Automation({
        rules: () => rules,
        counter,
        logger: silent,
        clock: systemClock,
        nodeId: n.id,
        fire: async ({ rule, domain }) => {
          firings.push(n.id);
          await n.policy.suspend(domain, { durationMs: rule.durationMs, reason: 'automation', rule: rule.name });
        },
      });
    });
    const reply: SmtpReply = { code: 421, enhanced: '4.7.0', text: '[TS04] deferred', remote: { name: 'mx.lift.test', address: '192.0.2.1' } };
    const seen = (i: number, id: string) => automations[i].observe('lift.test', id, { recipients: [{ address: 'u@lift.test', result: 'deferred', reply }], tls: false });
    seen(0, 'first');
    await until(() => s2.suspended('lift.test')?.rule === 'once', 's2 holds the rule\'s suspension');
    await s2.policy.resume('lift.test');
    await until(() => s1.suspended('lift.test') === undefined, 'lifted on s1');
    await s2.sync.settled();
    await new Promise((r) => setTimeout(r, 200));
    seen(0, 'second');
    await until(() => firings.length === 2 && s2.suspended('lift.test')?.rule === 'once', 'the rule fires again and its suspension reaches s2');
    await s1.policy.resume('lift.test');
  });

  test('an automation threshold counted across nodes fires once, and its suspension reaches every node with the rule name', async () => {
    const rules = parseAutomation('[ts04]\nmatch=\\[TS04\\]\nthreshold=3\nwindow=10m\naction=suspend\nduration=2h\n').rules;
    const members = [await node('p'), await node('q'), await node('r')];
    const firings: string[] = [];
    const automations = members.map(
      (n) =>
        new Automation({
          rules: () => rules,
          counter: new AutomationCounter(systemClock, n.link),
          logger: silent,
          clock: systemClock,
          nodeId: n.id,
          fire: async ({ rule, domain }) => {
            firings.push(n.id);
            await n.policy.suspend(domain, { durationMs: rule.durationMs, reason: 'automation', rule: rule.name });
          },
        }),
    );
    const reply: SmtpReply = { code: 421, enhanced: '4.7.0', text: '[TS04] Messages temporarily deferred', remote: { name: 'mx.auto.test', address: '192.0.2.1' } };
    // Two matches on each node: six in all, three needed; the rule fires once.
    for (let round = 0; round < 2; round++) {
      for (const [i, auto] of automations.entries()) auto.observe('auto.test', `e${round}${i}`, { recipients: [{ address: 'u@auto.test', result: 'deferred', reply }], tls: false });
      await new Promise((r) => setTimeout(r, 100));
    }
    await until(() => members.every((n) => n.suspended('auto.test')?.rule === 'ts04'), 'every node suspends auto.test by rule ts04');
    assert.equal(firings.length, 1, `fired once cluster-wide (by ${firings.join(', ')})`);
    await members[0].policy.resume('auto.test');
  });
});
