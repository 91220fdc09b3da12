/**
 * Failures of a node or of Redis while several Tern nodes share limits (issue #17): a node
 * SIGKILLed holding connection leases, and Redis killed mid-run (failure_mode=share).
 */
import type { RedisBackend } from './redis-backend.js';
import { recordTime } from './redis-nodes.js';
import { attemptsCharged, burstOf, firstRecordAfter, openAtTransactions, peakFields, sessionNodes, sessionPeak, sessionsOpened, slashed, sleep, waitForIds, withSetup } from './redis-scenario.js';
import type { RedisBenchOptions } from './redis-scenario.js';
import { firstAtLeast, largestGap, round, tally, windowCounts } from './sink-figures.js';

const DOWN = new Set(['redis_down', 'redis_slot_down']);
const UP = new Set(['redis_up', 'redis_slot_up']);

/** How long the sink takes to answer each final dot in the node-killed figure: sessions stay busy. */
const KILL_SINK_DELAY_MS = 20;
/** Redis back: every node's `redis_up` within this many seconds of Redis answering again. */
const BACK_TARGET_S = 5;

/**
 * max_connections=M over N nodes, redis.ini lease_ttl=T (short, so that the figure is quick):
 * once mail flows, the node with the most sessions open at the sink is SIGKILLed. Figures:
 * how long until the other nodes have M sessions open (its leases freed: target ≤ T), then,
 * with the node restarted on its queue, that every message Tern acknowledged arrived, once.
 */
export async function nodeKilled(backend: RedisBackend, o: RedisBenchOptions): Promise<Record<string, unknown>> {
  const m = o.maxConnections;
  const limits = `[sink.test]\nmax_connections=${m}\n`;
  return withSetup(backend, { dataDelayMs: KILL_SINK_DELAY_MS }, { count: o.nodes, limits, redis: `lease_ttl=${o.leaseTtl}` }, async ({ sink, nodes }) => {
    const { acked, seconds } = await nodes.inject(o.killMessages, 'kill');
    nodes.release();
    await sink.waitForArrivals(Math.max(1, Math.floor(acked.length / 10)), 60_000);
    // The victim: the node with the most sessions open at the sink right now (it holds leases).
    let victim = -1;
    let victimOpen = 0;
    for (const deadline = Date.now() + 10_000; victimOpen === 0 && Date.now() < deadline; await sleep(20)) {
      const of = sessionNodes(sink);
      const open = nodes.nodes.map((n) => sink.sessions.filter((s) => s.closedAt === undefined && of.get(s.id) === n.name).length);
      victimOpen = Math.max(...open);
      victim = open.indexOf(victimOpen);
    }
    if (victimOpen === 0) throw new Error('no node had a session open at the sink to be killed');
    const name = nodes.nodes[victim].name;
    const arrivedBefore = sink.arrivals.length;
    const killAt = Date.now();
    await nodes.kill(victim);
    await sleep((o.leaseTtl + 3) * 1000);
    const restartAt = Date.now();
    const of = sessionNodes(sink);
    const others = sink.sessions.filter((s) => of.get(s.id) !== name);
    const freedAt = firstAtLeast(others, m, killAt, restartAt);
    await nodes.restart(victim);
    const lost = await waitForIds(sink, acked, 120_000).then(
      () => '',
      (err: Error) => err.message,
    );
    await sleep(1000); // a late second copy would show now
    const t = tally(acked, sink.arrivals.map((a) => a.messageId));
    // A copy the sink acknowledged in the victim's session that the kill cut: the node died
    // before it wrote the delivery down, so it sent it again after the restart (SMTP's
    // at-least-once, RFC 1047): counted apart from any other second copy.
    const cut = new Set(sink.sessions.filter((s) => of.get(s.id) === name && s.closedAt !== undefined && s.closedAt >= killAt - 5 && s.openedAt <= killAt).map((s) => s.id));
    const inFlight = t.duplicated.filter((id) => cut.has(sink.arrivals.find((a) => a.messageId === id)!.session)).length;
    const freedS = freedAt === undefined ? undefined : round((freedAt - killAt) / 1000, 2);
    return {
      scenario: 'redis node killed',
      redis: backend.kind,
      nodes: o.nodes,
      max_connections: m,
      lease_ttl_s: o.leaseTtl,
      messages: acked.length,
      inject_s: round(seconds, 2),
      killed: name,
      killed_sessions_open: victimOpen,
      arrived_before_kill: arrivedBefore,
      // '-': the other nodes never had M sessions open before the restart.
      slots_reused_after_s: freedS ?? '-',
      restarted_after_s: round((restartAt - killAt) / 1000, 2),
      arrived_unique: acked.length - t.missing.length,
      missing: t.missing.length,
      duplicated: t.duplicated.length,
      duplicated_cut_by_kill: inFlight,
      unanswered_at_sink: sink.unanswered,
      ...peakFields('', sessionPeak(sink, killAt)),
      ...(lost ? { error: lost } : {}),
      ok: freedS !== undefined && freedS <= o.leaseTtl && t.missing.length === 0 && t.duplicated.length === inFlight,
    };
  });
}

/**
 * Rate R/s (burst B) and max_connections=M to sink.test, failure_mode=share, mail for
 * `failSeconds` at R queued over the nodes: the server holding the destination's keys
 * (the standalone Redis, or the Cluster master of its hash slot) is SIGKILLed a while in,
 * and started again (empty) `awaySeconds` later.
 */
export async function redisKilled(backend: RedisBackend, o: RedisBenchOptions): Promise<Record<string, unknown>> {
  const burst = burstOf(o);
  const m = o.maxConnections;
  const limits = `[sink.test]\nmax_message_rate=${o.rate}/s\nburst=${burst}\nmax_connections=${m}\n`;
  return withSetup(backend, { dataDelayMs: o.sinkDelayMs }, { count: o.nodes, limits, redis: 'failure_mode=share' }, async ({ sink, nodes }) => {
    const { acked, seconds } = await nodes.inject(o.rate * o.failSeconds, 'rkill');
    const server = await backend.serverOf('sink.test');
    nodes.release();
    const releasedAt = Date.now();
    await sleep(((o.failSeconds - o.awaySeconds) * 1000) / 2);
    const killAt = Date.now();
    await server.kill();
    await sleep(o.awaySeconds * 1000);
    const restartAt = Date.now();
    await server.restart();
    const upAt = Date.now();
    await backend.settled();
    const lost = await waitForIds(sink, acked, (o.failSeconds * 3 + 60) * 1000).then(
      () => '',
      (err: Error) => err.message,
    );
    await sleep(1000);
    const times = sink.arrivals.map((a) => a.at);
    const away = times.filter((x) => x >= killAt && x < restartAt).length;
    const awayRate = (away * 1000) / (restartAt - killAt);
    const windows = windowCounts(times, 1000, 100, killAt, restartAt);
    const maxWindow = windows.length ? Math.max(...windows) : 0;
    const gap = largestGap(times, killAt - 1000, killAt + 5000);
    // The gap above is the whole sink's, around the kill only; over the whole outage too,
    // and whether the mail went on in the sessions open at the kill or in new ones.
    const gapAway = largestGap(times, killAt, restartAt);
    const opened = sessionsOpened(sink, killAt, restartAt);
    const away_ = sessionPeak(sink, killAt, killAt, restartAt);
    const sessionsAway = away_.max;
    const charged = attemptsCharged(nodes);
    const t = tally(acked, sink.arrivals.map((a) => a.messageId));
    // On a Redis Cluster a master away marks only its slots down (redis_slot_down/up) until
    // the Cluster itself fails; standalone, the whole link (redis_down/up).
    const down = firstRecordAfter(nodes, killAt, (r) => DOWN.has(String(r.event)));
    const back = firstRecordAfter(nodes, restartAt, (r) => UP.has(String(r.event)));
    const seen = [...new Set(nodes.allRecords().filter((r) => recordTime(r) >= killAt && (DOWN.has(String(r.event)) || UP.has(String(r.event)))).map((r) => String(r.event)))].join('+');
    const backS = back.map((x) => (x === undefined ? undefined : round(x / 1000, 2)));
    const ok =
      gap <= 1000 &&
      awayRate <= 1.05 * o.rate &&
      maxWindow <= o.rate + burst &&
      sessionsAway <= m &&
      charged.retried + charged.deferred + charged.bounced === 0 &&
      t.missing.length === 0 &&
      t.duplicated.length === 0 &&
      // A node that never noted Redis (or the slot's master) away has nothing to come back from.
      backS.every((x, i) => down[i] === undefined || (x !== undefined && x <= BACK_TARGET_S));
    return {
      scenario: 'redis killed',
      redis: backend.kind,
      killed: `127.0.0.1:${server.port}`,
      nodes: o.nodes,
      rate_per_s: o.rate,
      burst,
      max_connections: m,
      messages: acked.length,
      inject_s: round(seconds, 2),
      killed_after_s: round((killAt - releasedAt) / 1000, 2),
      away_s: round((restartAt - killAt) / 1000, 2),
      arrived_before_kill: times.filter((x) => x < killAt).length,
      max_gap_around_kill_ms: gap,
      max_gap_away_ms: gapAway,
      sessions_opened_away: opened.count,
      sessions_opened_away_of: opened.of,
      open_at_kill_transactions: openAtTransactions(sink, killAt),
      rate_away_per_s: round(awayRate, 1),
      rate_away_limit: round(1.05 * o.rate, 1),
      max_1s_window_away: maxWindow,
      window_limit: o.rate + burst,
      ...peakFields('_away', away_),
      ...peakFields('', sessionPeak(sink, killAt)),
      attempts_retried: charged.retried,
      deferred: charged.deferred,
      bounced: charged.bounced,
      missing: t.missing.length,
      duplicated: t.duplicated.length,
      down_after_ms: slashed(down),
      records: seen || '-',
      restart_took_ms: upAt - restartAt,
      back_after_s: slashed(backS),
      back_target_s: BACK_TARGET_S,
      ...(lost ? { error: lost } : {}),
      ok,
    };
  });
}
