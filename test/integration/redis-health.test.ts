import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import { Redis } from 'ioredis';
import { RedisDestinationHealth, RedisLink, RedisSharedCaches } from '../../src/cluster/index.js';
import type { DestinationHealth, HealthNews, ProbeWait, SharedBackoff } from '../../src/cluster/index.js';
import { redisMainSchema } from '../../src/config/index.js';
import { systemClock } from '../../src/core/index.js';
import { DnsResolver } from '../../src/dns/index.js';
import { DestinationGate } from '../../src/scheduler/destinations.js';
import { SharedBackoffs } from '../../src/scheduler/shared-backoff.js';
import { MtaStsPolicies } from '../../src/delivery/mta-sts.js';
import { NoTlsMemory } from '../../src/delivery/no-tls-memory.js';
import { RedisCluster, RedisServer } from '../helpers/redis-server.js';
import { TestDnsServer } from '../helpers/dns-server.js';
import { makeCert } from '../helpers/certs.js';
import { listenOn } from '../helpers/ports.js';
import { recordingLogger } from '../helpers/recording-logger.js';

const PREFIX = 'ith:';
const CHANNEL = `${PREFIX}ch:health`;
const settings = (url: string) => redisMainSchema.parse({ enabled: 'true', url, command_timeout: '300', key_prefix: PREFIX });

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Resolves once each of these nodes hears the health channel (its SUBSCRIBE is made
 * asynchronously): a message published from now on reaches it. A marker published last
 * comes after every probe (one publisher, one channel: in order), so no probe reaches a
 * handler subscribed afterwards.
 */
async function listening(raw: Redis, ...healths: DestinationHealth[]): Promise<void> {
  for (const health of healths) {
    const heard = new Set<string>();
    const off = health.subscribe((n) => {
      if (n.kind === 'up') heard.add(n.destination);
    });
    try {
      await waitFor(async () => {
        await raw.publish(CHANNEL, JSON.stringify({ v: 1, kind: 'up', destination: 'listening.test', node: 'test' }));
        await new Promise((r) => setTimeout(r, 20));
        return heard.has('listening.test');
      });
      await raw.publish(CHANNEL, JSON.stringify({ v: 1, kind: 'up', destination: 'listened.test', node: 'test' }));
      await waitFor(() => heard.has('listened.test'));
    } finally {
      off();
    }
  }
}

/** The real DestinationHealth, with the answers of its claims and downs kept for the test to wait on. */
function answersOf(health: DestinationHealth) {
  const claims: (true | ProbeWait | undefined)[] = [];
  const downs: (SharedBackoff | undefined)[] = [];
  const kept: DestinationHealth = {
    down: async (...args) => {
      const answer = await health.down(...args);
      downs.push(answer);
      return answer;
    },
    up: (...args) => health.up(...args),
    claimProbe: async (destination) => {
      const answer = await health.claimProbe(destination);
      claims.push(answer);
      return answer;
    },
    backoffLeft: (destination) => health.backoffLeft(destination),
    releaseProbe: (destination) => health.releaseProbe(destination),
    subscribe: (handler) => health.subscribe(handler),
  };
  return { kept, claims, downs };
}

const refused = (claims: readonly (true | ProbeWait | undefined)[]) => claims.some((c) => c !== undefined && c !== true && c.why === 'probing');

/** A node's shared parts, as compose.ts builds them on its RedisLink. */
async function node(url: string, id: string, probeMs = 400) {
  const { logger, records } = recordingLogger();
  const link = new RedisLink({ settings: settings(url), nodeId: id, logger });
  assert.equal(await link.ready(5000), true);
  const health = new RedisDestinationHealth(link, { probeMs: () => probeMs });
  return { link, health, logger, records, caches: new RedisSharedCaches(link) };
}

/** A node's gate with its shared backoff (as the scheduler's Admission builds them); the entries it hands back are kept in `requeued`. */
async function gateNode(url: string, id: string, probeMs: number, backoff: { minMs: number; maxMs: number }) {
  const n = await node(url, id, probeMs);
  const gate = new DestinationGate(systemClock, () => 10, backoff);
  const requeued: string[] = [];
  const answers = answersOf(n.health);
  const shared = new SharedBackoffs({ gate, health: answers.kept, requeue: (ids) => requeued.push(...ids), logger: n.logger });
  return { ...n, ...answers, gate, requeued, shared };
}

describe('shared destination health, TLS memory and MTA-STS policies on a real Redis', () => {
  let redis: RedisServer;
  let raw: Redis;
  before(async () => {
    redis = await RedisServer.start();
    raw = new Redis(redis.port, '127.0.0.1');
  });
  after(async () => {
    raw.disconnect();
    await redis.stop();
  });

  test('a down record with the until time and the last reply; another node hears it; a longer backoff already recorded wins', async () => {
    const a = await node(redis.url, 'a');
    const b = await node(redis.url, 'b');
    try {
      await listening(raw, b.health);
      const heard: HealthNews[] = [];
      b.health.subscribe((n) => heard.push(n));
      const answer = await a.health.down('down1.test', 5000, { code: 421, enhanced: '4.3.2', text: 'busy' });
      assert.deepEqual(answer, { remainingMs: 5000, backoffMs: 5000 });
      const record = JSON.parse((await raw.get(`${PREFIX}{down1.test}:health`))!) as Record<string, unknown>;
      assert.equal(record.node, 'a');
      assert.equal(record.backoff_ms, 5000);
      assert.deepEqual(record.reply, { code: 421, enhanced: '4.3.2', text: 'busy' });
      const [sec, usec] = (await raw.time()).map(Number);
      const redisNow = sec * 1000 + Math.floor(usec / 1000);
      assert.ok(typeof record.until === 'number' && record.until > redisNow && record.until <= redisNow + 5000, 'until in Redis time: the backoff from when it was recorded');
      assert.ok((await raw.pttl(`${PREFIX}{down1.test}:health`)) > 0, 'expires with the backoff');
      await waitFor(() => heard.length > 0);
      assert.deepEqual(heard[0], { kind: 'down', destination: 'down1.test', remainingMs: 5000, backoffMs: 5000, node: 'a' });
      const shorter = await b.health.down('down1.test', 1000);
      assert.ok(shorter && shorter.remainingMs > 1000 && shorter.backoffMs === 5000, 'b adopts the longer backoff a recorded');
      assert.equal(await b.health.up('down1.test'), true);
      assert.equal(await raw.exists(`${PREFIX}{down1.test}:health`), 0);
    } finally {
      await Promise.all([a.link.close(), b.link.close()]);
    }
  });

  test('the probe lock: exactly one of three nodes probes, a retried claim is the same node, another after the lock lapses', async () => {
    const nodes = await Promise.all(['p1', 'p2', 'p3'].map((id) => node(redis.url, id, 10_000)));
    try {
      const answers = await Promise.all(nodes.map((n) => n.health.claimProbe('probe.test')));
      const winners = answers.filter((a) => a === true);
      assert.equal(winners.length, 1, 'exactly one probe');
      for (const a of answers) if (a !== true) assert.ok(a !== undefined && a.why === 'probing' && a.ms > 0 && a.ms <= 10_000, 'the others learn how long the lock holds');
      const winner = nodes[answers.indexOf(true)];
      assert.equal(await winner.health.claimProbe('probe.test'), true, 'idempotent by node id');
      // The lock lapses (its node died): expired in Redis rather than waited for.
      await raw.pexpire(`${PREFIX}{probe.test}:probe`, 1);
      await waitFor(async () => (await raw.exists(`${PREFIX}{probe.test}:probe`)) === 0);
      const loser = nodes[answers.findIndex((a) => a !== true)];
      assert.equal(await loser.health.claimProbe('probe.test'), true, 'the lock lapsed: another node may probe');
      assert.equal(((await winner.health.claimProbe('probe.test')) as { why: string }).why, 'probing');
      // The prober's verdict (down) frees its lock.
      await loser.health.down('probe.test', 2000);
      assert.equal(await raw.exists(`${PREFIX}{probe.test}:probe`), 0);
      const wait = await winner.health.claimProbe('probe.test');
      assert.ok(wait !== undefined && wait !== true && wait.why === 'backoff' && wait.ms > 0 && wait.ms <= 2000, 'the backoff the verdict started runs: no probe before it ends');
    } finally {
      await Promise.all(nodes.map((n) => n.link.close()));
    }
  });

  test('garbled news and a garbled record are ignored', async () => {
    const a = await node(redis.url, 'g1');
    const b = await node(redis.url, 'g2');
    try {
      await listening(raw, b.health);
      const heard: HealthNews[] = [];
      b.health.subscribe((n) => heard.push(n));
      for (const junk of ['not json', '{"v":2,"kind":"down"}', JSON.stringify({ v: 1, kind: 'down', destination: 'x.test', remaining_ms: -5, backoff_ms: 10, node: 'z' }), JSON.stringify({ v: 1, kind: 'up', destination: 'x'.repeat(300), node: 'z' }), 'x'.repeat(5000)]) {
        await raw.publish(`${PREFIX}ch:health`, junk);
      }
      await raw.publish(`${PREFIX}ch:health`, JSON.stringify({ v: 1, kind: 'up', destination: 'x.test', node: 'z' }));
      // The junk went first on the same connection and channel: once this is heard, every
      // piece of it has reached the node too.
      await waitFor(() => heard.length > 0);
      assert.deepEqual(heard, [{ kind: 'up', destination: 'x.test', node: 'z' }]);
      await raw.set(`${PREFIX}{garbled.test}:health`, '{"backoff_ms": "lots', 'PX', 60_000);
      assert.deepEqual(await a.health.down('garbled.test', 3000), { remainingMs: 3000, backoffMs: 3000 }, 'the garbled record is replaced');
      assert.equal((JSON.parse((await raw.get(`${PREFIX}{garbled.test}:health`))!) as { node: string }).node, 'g1');
    } finally {
      await Promise.all([a.link.close(), b.link.close()]);
    }
  });

  test('two gates on one Redis: the other node parks without an attempt, exactly one probes, its verdict releases both', async () => {
    const backoff = { minMs: 300, maxMs: 1000 };
    const a = await gateNode(redis.url, 'ga', 2000, backoff);
    const b = await gateNode(redis.url, 'gb', 2000, backoff);
    try {
      await listening(raw, a.health, b.health);
      assert.deepEqual(a.gate.admit('gate.test', 'a1'), { go: true });
      a.gate.finished('gate.test', true, { code: 421, enhanced: '4.4.2', text: 'no' });
      await waitFor(() => b.gate.backedOff().some((d) => d.domain === 'gate.test'));
      assert.deepEqual(b.gate.admit('gate.test', 'b1'), { go: false, reason: 'backoff' }, 'parked on b, never attempted');
      assert.equal(b.gate.reasonOf('b1'), 'backoff');
      assert.deepEqual(a.gate.admit('gate.test', 'a2'), { go: false, reason: 'backoff' });
      // The backoff ends on both: each asks for the probe lock, one gets it; the other is told that one probes.
      await waitFor(() => a.gate.backedOff().length + b.gate.backedOff().length === 0);
      a.gate.lapse();
      b.gate.lapse();
      await waitFor(() => (a.requeued.length > 0 && refused(b.claims)) || (b.requeued.length > 0 && refused(a.claims)));
      const [prober, other, probeId] = a.requeued.length > 0 ? [a, b, 'a2'] : [b, a, 'b1'];
      assert.deepEqual(prober.requeued, [probeId]);
      assert.deepEqual(other.requeued, [], 'the other node keeps its entries parked');
      assert.deepEqual(prober.gate.admit('gate.test', probeId), { go: true }, 'the probe');
      const otherId = probeId === 'a2' ? 'b1' : 'a2';
      assert.deepEqual(other.gate.admit('gate.test', otherId), { go: false, reason: 'backoff' }, 'still parked while the probe runs');
      // The probe gets a session: up everywhere.
      prober.gate.finished('gate.test', false);
      await waitFor(() => other.requeued.includes(otherId));
      assert.deepEqual(other.gate.admit('gate.test', otherId), { go: true });
      assert.equal(prober.records.filter((r) => r.event === 'destination_probe').length, 1);
      assert.equal(other.records.filter((r) => r.event === 'destination_probe').length, 0);
    } finally {
      a.shared.stop();
      b.shared.stop();
      await Promise.all([a.link.close(), b.link.close()]);
    }
  });

  test('a probe that ends without a verdict (DNS failed, shutdown cut it short) releases nobody: its lock goes and the other node probes', async () => {
    const backoff = { minMs: 300, maxMs: 1000 };
    const a = await gateNode(redis.url, 'na', 60_000, backoff);
    const b = await gateNode(redis.url, 'nb', 60_000, backoff);
    try {
      await listening(raw, a.health, b.health);
      const heard = { a: [] as HealthNews[], b: [] as HealthNews[] };
      a.health.subscribe((m) => heard.a.push(m));
      b.health.subscribe((m) => heard.b.push(m));
      a.gate.admit('nv.test', 'a0');
      a.gate.finished('nv.test', true, { code: 421, enhanced: '4.4.2', text: 'no' });
      await waitFor(() => b.gate.backedOff().some((d) => d.domain === 'nv.test'));
      assert.deepEqual(b.gate.admit('nv.test', 'b1'), { go: false, reason: 'backoff' });
      // a's own probe after the backoff: it takes the lock (for a minute).
      await waitFor(() => a.gate.backedOff().length === 0);
      a.gate.admit('nv.test', 'a1');
      await waitFor(() => a.requeued.includes('a1'));
      assert.deepEqual(a.gate.admit('nv.test', 'a1'), { go: true }, 'a probes');
      await waitFor(async () => (await raw.get(`${PREFIX}{nv.test}:probe`)) === 'na');
      await waitFor(() => b.gate.backedOff().length === 0);
      b.gate.lapse();
      // a's probe reached no server: the lock goes, b (re-asking every second) takes it.
      a.gate.unsettled('nv.test', 'a1');
      await waitFor(() => b.requeued.includes('b1'));
      assert.deepEqual(b.gate.admit('nv.test', 'b1'), { go: true }, 'b probes now');
      assert.equal(await raw.get(`${PREFIX}{nv.test}:probe`), 'nb');
      assert.deepEqual(b.gate.admit('nv.test', 'b2'), { go: false, reason: 'backoff' }, 'b still backs off: no "up" came');
      assert.deepEqual(a.gate.admit('nv.test', 'a2'), { go: false, reason: 'backoff' }, 'a waits for b now');
      assert.equal([...heard.a, ...heard.b].filter((m) => m.kind === 'up').length, 0);
      assert.equal(a.records.filter((r) => r.event === 'destination_up_shared').length, 0);
      b.gate.finished('nv.test', false);
      await waitFor(() => a.requeued.includes('a2'));
    } finally {
      a.shared.stop();
      b.shared.stop();
      await Promise.all([a.link.close(), b.link.close()]);
    }
  });

  test('a probe that runs longer than the lock: the lock is renewed while it runs, no second node probes, and goes with the verdict', async () => {
    const a = await node(redis.url, 'ra', 2500);
    const b = await node(redis.url, 'rb', 2500);
    const gate = new DestinationGate(systemClock, () => 10, { minMs: 200, maxMs: 200 });
    const requeued: string[] = [];
    const shared = new SharedBackoffs({ gate, health: a.health, requeue: (ids) => requeued.push(...ids), logger: a.logger });
    try {
      gate.admit('long.test', 'x');
      gate.finished('long.test', true);
      await waitFor(() => gate.backedOff().length === 0);
      gate.admit('long.test', 'p');
      await waitFor(() => requeued.includes('p'));
      assert.deepEqual(gate.admit('long.test', 'p'), { go: true }, 'a probes');
      // The probe takes longer than the lock's 2.5 s (every MX address at connect_timeout):
      // b asks until Redis's own clock is past the end of the lock's first term.
      const redisNow = async () => {
        const [sec, usec] = (await raw.time()).map(Number);
        return sec * 1000 + usec / 1000;
      };
      const firstTermEnds = (await redisNow()) + (await raw.pttl(`${PREFIX}{long.test}:probe`));
      const claimsByB: (true | { why: string } | undefined)[] = [];
      do {
        claimsByB.push(await b.health.claimProbe('long.test'));
        await new Promise((r) => setTimeout(r, 250));
      } while ((await redisNow()) <= firstTermEnds);
      claimsByB.push(await b.health.claimProbe('long.test'));
      assert.ok(claimsByB.length > 0 && claimsByB.every((c) => c !== true && c?.why === 'probing'), 'b never gets the lock while a probes');
      assert.equal(await raw.get(`${PREFIX}{long.test}:probe`), 'ra');
      gate.finished('long.test', false);
      await waitFor(async () => (await raw.exists(`${PREFIX}{long.test}:probe`)) === 0);
      assert.equal(await b.health.claimProbe('long.test'), true, 'the verdict freed it');
    } finally {
      shared.stop();
      await Promise.all([a.link.close(), b.link.close()]);
    }
  });

  test('an "up" whose message was lost: the waiting node sees the record gone and releases its mail long before its backoff ends', async () => {
    const a = await node(redis.url, 'la');
    const b = await node(redis.url, 'lb');
    const gate = new DestinationGate(systemClock, () => 10, { minMs: 1000, maxMs: 600_000 });
    const requeued: string[] = [];
    const shared = new SharedBackoffs({ gate, health: b.health, requeue: (ids) => requeued.push(...ids), logger: b.logger });
    try {
      await listening(raw, b.health);
      await a.health.down('lost-up.test', 600_000);
      await waitFor(() => gate.backedOff().some((d) => d.domain === 'lost-up.test'));
      assert.deepEqual(gate.admit('lost-up.test', 'l1'), { go: false, reason: 'backoff' });
      // A's probe got a session: the record goes, but the "up" message never reaches B.
      await raw.del(`${PREFIX}{lost-up.test}:health`);
      await waitFor(() => requeued.includes('l1'), 20_000);
      assert.deepEqual(gate.admit('lost-up.test', 'l1'), { go: true });
      assert.ok(b.records.some((r) => r.event === 'destination_up_missed' && r.domain === 'lost-up.test'));
      assert.equal(gate.backedOff().length, 0);
    } finally {
      shared.stop();
      await Promise.all([a.link.close(), b.link.close()]);
    }
  });

  test("the operator's lift on one node (flush, resume) clears the shared backoff: the other node releases its parked entries", async () => {
    const backoff = { minMs: 600_000, maxMs: 600_000 };
    const a = await gateNode(redis.url, 'oa', 5000, backoff);
    const b = await gateNode(redis.url, 'ob', 5000, backoff);
    try {
      await listening(raw, a.health, b.health);
      for (const d of ['one.test', 'two.test']) {
        assert.deepEqual(a.gate.admit(d, `a-${d}`), { go: true });
        a.gate.finished(d, true, { code: 421, enhanced: '4.3.2', text: 'down' });
        assert.deepEqual(a.gate.admit(d, `a2-${d}`), { go: false, reason: 'backoff' });
      }
      await waitFor(() => b.gate.backedOff().length === 2);
      assert.deepEqual(b.gate.admit('one.test', 'b1'), { go: false, reason: 'backoff' });
      assert.deepEqual(b.gate.admit('two.test', 'b2'), { go: false, reason: 'backoff' });

      // `tern domain resume one.test` (or `tern queue flush --domain one.test`) on A.
      assert.deepEqual(a.shared.lift('one.test'), ['a2-one.test']);
      await waitFor(() => b.requeued.includes('b1'));
      assert.deepEqual(b.gate.admit('one.test', 'b1'), { go: true }, 'released on B, long before its backoff ends');
      assert.deepEqual(b.gate.admit('two.test', 'b2x'), { go: false, reason: 'backoff' }, 'the other destination stays backed off');
      assert.equal(await raw.exists(`${PREFIX}{one.test}:health`), 0);
      assert.equal(await raw.exists(`${PREFIX}{two.test}:health`), 1);
      const lifted = a.records.find((r) => r.event === 'destination_backoff_lifted');
      assert.deepEqual([lifted?.domain, lifted?.scope, lifted?.destinations, lifted?.shared, lifted?.local_only], ['one.test', 'cluster', 1, 1, 0]);
      const heard = b.records.find((r) => r.event === 'destination_lift_shared');
      assert.deepEqual([heard?.domain, heard?.node, heard?.released], ['one.test', 'oa', 1]);

      // SIGHUP or `tern queue flush` on A: every destination it knows backed off.
      assert.deepEqual(a.shared.lift(), ['a2-two.test']);
      await waitFor(() => b.requeued.includes('b2'));
      assert.equal(await raw.exists(`${PREFIX}{two.test}:health`), 0);
      await waitFor(() => a.records.filter((r) => r.event === 'destination_backoff_lifted').length === 2);
      const all = a.records.filter((r) => r.event === 'destination_backoff_lifted')[1];
      assert.deepEqual([all.domain, all.scope, all.destinations], [undefined, 'cluster', 1]);
      assert.equal(b.records.filter((r) => r.event === 'destination_backoff_lifted').length, 0, 'B lifted nothing itself: no echo');

      // A named destination this node knew nothing of: its shared record goes all the same (another node may know it).
      await b.health.down('elsewhere.test', 600_000);
      await waitFor(() => a.gate.backedOff().some((d) => d.domain === 'elsewhere.test'));
      assert.deepEqual(b.shared.lift('elsewhere.test'), []);
      await waitFor(() => a.gate.backedOff().length === 0);
      assert.equal(await raw.exists(`${PREFIX}{elsewhere.test}:health`), 0);
    } finally {
      a.shared.stop();
      b.shared.stop();
      await Promise.all([a.link.close(), b.link.close()]);
    }
  });

  test('a down recorded before the lift and answered after it parks nothing', async () => {
    const n = await gateNode(redis.url, 'sd', 5000, { minMs: 1000, maxMs: 1000 });
    try {
      // The script is in Redis's cache (a first EVALSHA answered NOSCRIPT would run it again after the lift).
      await n.health.down('warm.test', 1000);
      // Another node's longer backoff, whose news this node never heard: the down's answer would adopt it.
      await raw.set(`${PREFIX}{stale.test}:health`, JSON.stringify({ v: 1, node: 'zz', backoff_ms: 600_000 }), 'PX', 600_000);
      assert.deepEqual(n.gate.admit('stale.test', 's1'), { go: true });
      n.gate.finished('stale.test', true);
      // The operator lifts before Redis answered the down (same connection: the down runs first).
      assert.deepEqual(n.shared.lift('stale.test'), []);
      await waitFor(() => n.records.some((r) => r.event === 'destination_backoff_lifted'));
      assert.equal(n.downs.length, 1, 'the down was answered before the lift');
      assert.equal(n.downs[0]?.remainingMs !== undefined && n.downs[0].remainingMs > 1000, true, 'with the longer backoff');
      assert.deepEqual(n.gate.admit('stale.test', 's2'), { go: true }, 'not parked again by the stale answer');
      assert.equal(n.gate.backedOff().length, 0);
      assert.equal(await raw.exists(`${PREFIX}{stale.test}:health`), 0);
    } finally {
      n.shared.stop();
      await n.link.close();
    }
  });

  test('Redis paused: the lift is this node\'s only, and its record says so', async () => {
    const n = await gateNode(redis.url, 'lp', 5000, { minMs: 600_000, maxMs: 600_000 });
    try {
      assert.deepEqual(n.gate.admit('local.test', 'p1'), { go: true });
      n.gate.finished('local.test', true);
      assert.deepEqual(n.gate.admit('local.test', 'p2'), { go: false, reason: 'backoff' });
      await waitFor(() => n.downs.length === 1);
      redis.pause();
      assert.deepEqual(n.shared.lift(), ['p2'], 'released here all the same');
      await waitFor(() => n.records.some((r) => r.event === 'destination_backoff_lifted'), 5000);
      const lifted = n.records.find((r) => r.event === 'destination_backoff_lifted')!;
      assert.deepEqual([lifted.scope, lifted.destinations, lifted.shared, lifted.local_only, lifted.level], ['local', 1, 0, 1, 'warn']);
      assert.deepEqual(n.gate.admit('local.test', 'p3'), { go: true });
    } finally {
      redis.resume();
      n.shared.stop();
      await n.link.close();
    }
  });

  test('a paused Redis: calls answer undefined within the timeout, and the gate probes on its own', async () => {
    const n = await gateNode(redis.url, 'paused', 5000, { minMs: 1000, maxMs: 1000 });
    const { gate, requeued, shared } = n;
    try {
      // Down while Redis answers: shared; then Redis stops answering before the backoff ends.
      assert.deepEqual(gate.admit('paused.test', 'e1'), { go: true });
      gate.finished('paused.test', true);
      assert.deepEqual(gate.admit('paused.test', 'e2'), { go: false, reason: 'backoff' });
      await waitFor(() => n.downs.length === 1);
      assert.ok(n.downs[0], 'recorded in Redis');
      redis.pause();
      assert.equal(await n.health.claimProbe('paused.test'), undefined);
      assert.equal(await n.health.down('paused.test', 1000), undefined);
      assert.equal(await n.caches.recall({ name: 'mx.paused.test', address: '127.0.0.211', port: 25 }), undefined);
      assert.equal(await n.caches.lookup('paused.test'), undefined);
      await waitFor(() => gate.backedOff().length === 0);
      // Handed back by the lapse itself when the link's "lost" came first, else by the claim that got no answer.
      const released = gate.lapse().released;
      await waitFor(() => released.includes('e2') || requeued.includes('e2'));
      assert.deepEqual(gate.admit('paused.test', 'e2'), { go: true }, 'this node probes itself, as a single node would');
    } finally {
      redis.resume();
      shared.stop();
      await n.link.close();
    }
  });

  test('Redis paused while another node probes: the waiting node stops waiting and probes itself', async () => {
    const a = await node(redis.url, 'wa', 60_000);
    const b = await gateNode(redis.url, 'wb', 60_000, { minMs: 200, maxMs: 200 });
    const { gate, requeued, shared } = b;
    try {
      await listening(raw, b.health);
      // A backs the destination off and, when it ends, takes the probe lock (for a minute).
      await a.health.down('wait.test', 1000);
      await waitFor(() => gate.backedOff().some((d) => d.domain === 'wait.test'));
      assert.deepEqual(gate.admit('wait.test', 'w1'), { go: false, reason: 'backoff' });
      await waitFor(async () => (await raw.exists(`${PREFIX}{wait.test}:health`)) === 0);
      assert.equal(await a.health.claimProbe('wait.test'), true);
      await waitFor(() => gate.backedOff().length === 0);
      gate.lapse();
      await waitFor(() => refused(b.claims));
      assert.equal(requeued.length, 0, 'B waits for the verdict of A');
      assert.deepEqual(gate.admit('wait.test', 'w2'), { go: false, reason: 'backoff' });
      // Redis stops answering: no verdict can come; B must not wait for the lock's minute.
      redis.pause();
      await waitFor(() => requeued.includes('w1'));
      assert.deepEqual(gate.admit('wait.test', 'w1'), { go: true }, 'B probes on its own');
    } finally {
      redis.resume();
      shared.stop();
      await Promise.all([a.link.close(), b.link.close()]);
    }
  });

  test('TLS-failure memory: shared for the exact host only, cached locally, no answer is no memory', async () => {
    const a = await node(redis.url, 'ta');
    const b = await node(redis.url, 'tb');
    try {
      const host = { name: 'mx.tls.test', address: '127.0.0.212', port: 2525 };
      a.caches.remember(host, 60_000);
      await waitFor(async () => (await b.caches.recall(host)) !== undefined);
      assert.ok((await b.caches.recall(host))! <= 60_000);
      assert.equal(await b.caches.recall({ ...host, name: 'mx.other.test' }), undefined, 'another name at the same address');
      assert.equal(await b.caches.recall({ ...host, port: 25 }), undefined, 'another port');
      const memory = new NoTlsMemory({ clock: systemClock, logger: b.logger, shared: b.caches });
      assert.equal(await memory.remembered(host, true), true);
      assert.equal(await memory.remembered(host, false), false, 'no_tls_memory=0: the shared memory is not asked');
      assert.ok(b.records.some((r) => r.event === 'tls_memory_shared'));
      const before = (await redis.commandCalls()).get('pttl') ?? 0;
      for (let i = 0; i < 20; i++) assert.equal(await memory.remembered(host, true), true);
      assert.equal((await redis.commandCalls()).get('pttl') ?? 0, before, 'the answer is cached: Redis is not asked per session');
      const fresh = new NoTlsMemory({ clock: systemClock, logger: b.logger, shared: b.caches });
      redis.pause();
      assert.equal(await fresh.remembered(host, true), false, 'Redis does not answer: TLS is tried');
    } finally {
      redis.resume();
      await Promise.all([a.link.close(), b.link.close()]);
    }
  });

  describe('MTA-STS policies', () => {
    const dns = new TestDnsServer();
    let https: Server;
    const fetches: string[] = [];
    const webCert = makeCert('mta-sts.cache.test', ['mta-sts.cache.test']);
    const POLICY = 'version: STSv1\nmode: enforce\nmx: mx.cache.test\nmax_age: 86400\n';
    before(async () => {
      dns.add('_mta-sts.cache.test', { type: 'TXT', data: 'v=STSv1; id=pol1;' }).add('mta-sts.cache.test', { type: 'A', data: '127.0.0.213' });
      await dns.start();
      https = createServer({ key: webCert.key, cert: webCert.cert }, (req, res) => {
        fetches.push(String(req.headers.host));
        res.writeHead(200, { 'content-type': 'text/plain' }).end(POLICY);
      });
      await listenOn(https, '127.0.0.213');
    });
    after(async () => {
      https.close();
      await dns.stop();
    });
    const policies = (n: Awaited<ReturnType<typeof node>>) => {
      const resolver = new DnsResolver({ servers: [{ host: '127.0.0.1', port: dns.port }], timeoutMs: 1000, cacheMaxEntries: 0, clock: systemClock });
      return new MtaStsPolicies({ resolver: () => resolver, clock: systemClock, logger: n.logger, ca: () => webCert.cert, port: () => (https.address() as { port: number }).port, timeoutMs: () => 2000, shared: n.caches });
    };

    test('one node fetches and stores; another uses the stored policy without fetching; an invalid stored policy is rejected', async () => {
      const a = await node(redis.url, 'sa');
      const b = await node(redis.url, 'sb');
      const c = await node(redis.url, 'sc');
      try {
        const fromA = await policies(a).policyFor('cache.test');
        assert.equal(fromA?.mode, 'enforce');
        assert.equal(fetches.length, 1);
        await waitFor(async () => (await b.caches.lookup('cache.test')) !== undefined);
        const stored = (await b.caches.lookup('cache.test'))!;
        assert.equal(stored.id, 'pol1');
        assert.ok(stored.remainingMs <= 86_400_000);
        const fromB = await policies(b).policyFor('cache.test');
        assert.deepEqual(fromB, fromA);
        assert.equal(fetches.length, 1, 'b did not fetch');
        assert.ok(b.records.some((r) => r.event === 'mta_sts_shared' && r.domain === 'cache.test'));
        // A stored policy that does not parse (mode missing) is not used: c fetches over HTTPS.
        await raw.set(`${PREFIX}{cache.test}:mta-sts`, JSON.stringify({ id: 'pol1', policy: 'version: STSv1\nmx: evil.test\nmax_age: 86400\n' }), 'PX', 60_000);
        const fromC = await policies(c).policyFor('cache.test');
        assert.deepEqual(fromC?.mx, ['mx.cache.test']);
        assert.equal(fetches.length, 2);
        assert.ok(c.records.some((r) => r.event === 'mta_sts_shared_invalid'));
        // Garbled, too large, another id: lookup answers nothing.
        await raw.set(`${PREFIX}{x1.test}:mta-sts`, '{"id": ', 'PX', 60_000);
        await raw.set(`${PREFIX}{x2.test}:mta-sts`, JSON.stringify({ id: 'a', policy: 'x'.repeat(65 * 1024) }), 'PX', 60_000);
        await raw.set(`${PREFIX}{x3.test}:mta-sts`, JSON.stringify({ id: 'bad id!', policy: POLICY }), 'PX', 60_000);
        for (const d of ['x1.test', 'x2.test', 'x3.test']) assert.equal(await c.caches.lookup(d), undefined, d);
        // A huge value is not even sent to the node: Redis's output grows by far less than it.
        await raw.set(`${PREFIX}{huge.test}:mta-sts`, 'x'.repeat(8 * 1024 * 1024), 'PX', 60_000);
        const sent = async () => Number(/total_net_output_bytes:(\d+)/.exec(await raw.info('stats'))![1]);
        const before = await sent();
        assert.equal(await c.caches.lookup('huge.test'), undefined);
        assert.ok((await sent()) - before < 1024 * 1024, 'the 8 MiB value stayed in Redis');
      } finally {
        await Promise.all([a.link.close(), b.link.close(), c.link.close()]);
      }
    });

    test('a paused Redis: the policy is fetched over HTTPS, never "no policy"', async () => {
      const n = await node(redis.url, 'sp');
      try {
        redis.pause();
        const before = fetches.length;
        const policy = await policies(n).policyFor('cache.test');
        assert.equal(policy?.mode, 'enforce');
        assert.equal(fetches.length, before + 1);
      } finally {
        redis.resume();
        await n.link.close();
      }
    });
  });

  test('a node whose link went down hears "lost"', async () => {
    const n = await node(redis.url, 'lost');
    try {
      const heard: HealthNews[] = [];
      n.health.subscribe((m) => heard.push(m));
      redis.pause();
      const down = once(n.link, 'down');
      await n.health.claimProbe('lost.test');
      await down;
      assert.deepEqual(heard, [{ kind: 'lost' }]);
    } finally {
      redis.resume();
      await n.link.close();
    }
  });
});

describe('shared destination health on a 3-master Redis Cluster', () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await RedisCluster.start();
  });
  after(async () => {
    await cluster.stop();
  });

  test('records, the probe lock and news work for destinations on every master', async () => {
    const make = async (id: string) => {
      const { logger } = recordingLogger();
      const link = new RedisLink({ settings: redisMainSchema.parse({ enabled: 'true', cluster: cluster.seeds, command_timeout: '500' }), nodeId: id, logger });
      assert.equal(await link.ready(10_000), true);
      return { link, health: new RedisDestinationHealth(link, { probeMs: () => 5000 }), caches: new RedisSharedCaches(link) };
    };
    const a = await make('ca');
    const b = await make('cb');
    try {
      const heard: HealthNews[] = [];
      b.health.subscribe((n) => heard.push(n));
      const domains = ['example.com', 'example.net', 'example.org', 'outlook.com'];
      await waitFor(async () => {
        await a.health.down(domains[0], 60_000);
        await new Promise((r) => setTimeout(r, 50));
        return heard.length > 0;
      });
      for (const d of domains) {
        assert.deepEqual(await a.health.down(d, 60_000), { remainingMs: 60_000, backoffMs: 60_000 }, d);
        assert.equal(((await b.health.claimProbe(d)) as { why: string }).why, 'backoff', d);
        await a.health.up(d);
        assert.equal(await b.health.claimProbe(d), true, d);
        assert.equal(((await a.health.claimProbe(d)) as { why: string }).why, 'probing', d);
        a.caches.store(d, { id: 'c1', text: 'version: STSv1\nmode: testing\nmx: *\nmax_age: 600\n', maxAgeMs: 600_000 });
        await waitFor(async () => (await b.caches.lookup(d))?.id === 'c1');
      }
      await waitFor(() => domains.every((d) => heard.some((n) => n.kind === 'up' && n.destination === d)));
    } finally {
      await Promise.all([a.link.close(), b.link.close()]);
    }
  });

  // Last: it kills a master.
  test('one master killed: TLS memory, MTA-STS and health calls on its slots answer nothing, the rest are served, the link stays up', async () => {
    const { logger, records } = recordingLogger();
    const link = new RedisLink({ settings: redisMainSchema.parse({ enabled: 'true', cluster: cluster.seeds, command_timeout: '500' }), nodeId: 'ck', logger });
    assert.equal(await link.ready(10_000), true);
    const health = new RedisDestinationHealth(link, { probeMs: () => 5000 });
    const caches = new RedisSharedCaches(link);
    try {
      const hosts = Array.from({ length: 12 }, (_, i) => ({ name: `mx${i}.kill.test`, address: '127.0.0.214', port: 25 }));
      const domains = Array.from({ length: 12 }, (_, i) => `k${i}.example`);
      for (const h of hosts) caches.remember(h, 60_000);
      await waitFor(async () => (await Promise.all(hosts.map((h) => caches.recall(h)))).every((t) => t !== undefined));
      const victim = await cluster.masterOf(link.key('notls', `${hosts[0].name}|${hosts[0].address}|${hosts[0].port}`));
      const elsewhere: string[] = [];
      for (const d of domains) if ((await cluster.masterOf(link.destinationKey(d, 'health'))) !== victim) elsewhere.push(d);
      assert.ok(elsewhere.length > 0);
      await victim.kill();
      for (let round = 0; round < 3; round++) {
        assert.equal(await caches.recall(hosts[0]), undefined, 'its master is down: no memory, TLS is tried');
        for (const d of elsewhere) assert.ok(await health.down(d, 60_000), d);
        for (const d of elsewhere) await health.up(d);
      }
      assert.equal(link.up, true, 'one master down does not take the link down');
      assert.equal(records.filter((r) => r.event === 'redis_down').length, 0);
    } finally {
      await link.close();
    }
  });
});
