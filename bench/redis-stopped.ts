/**
 * Redis SIGSTOPped while several Tern nodes share limits (issue #17): a server that holds
 * its connections and answers nothing, the worst case for a client without timeouts.
 */
import { eventLoopDelay } from './loop-delay.js';
import type { RedisBackend } from './redis-backend.js';
import { recordTime } from './redis-nodes.js';
import { attemptsCharged, burstOf, firstRecordAfter, openAtTransactions, peakFields, sessionPeak, sessionsOpened, slashed, sleep, waitForIds, withSetup } from './redis-scenario.js';
import type { RedisBenchOptions } from './redis-scenario.js';
import { largestGap, round, tally } from './sink-figures.js';

/** The event-loop delay of every node stays under this while Redis does not answer. */
const LOOP_TARGET_MS = 50;
/**
 * A delivery that waited on a coordination call goes on once the call gives up: no gap in
 * arrivals longer than command_timeout and this much more for the session to go on.
 */
const GAP_ALLOWANCE_MS = 250;

/**
 * Rate R/s and max_connections=M to sink.test, failure_mode=share, redis.ini
 * command_timeout=C: while mail flows the server holding the destination's keys is
 * SIGSTOPped for `awaySeconds`, then SIGCONTed. Figures: when each node noted Redis down
 * (its `redis_down` record, with the error that said so), the longest time without an
 * arrival while Redis was stopped (target ≤ C + 250 ms: every call gave up within C), each
 * node's event-loop delay then (from its /metrics, reset at the stop; target max < 50 ms)
 * against a window before it, and the nodes back after SIGCONT.
 */
export async function redisStopped(backend: RedisBackend, o: RedisBenchOptions): Promise<Record<string, unknown>> {
  const burst = burstOf(o);
  const m = o.maxConnections;
  const limits = `[sink.test]\nmax_message_rate=${o.rate}/s\nburst=${burst}\nmax_connections=${m}\n`;
  const redis = `failure_mode=share\ncommand_timeout=${o.commandTimeout}`;
  return withSetup(backend, { dataDelayMs: o.sinkDelayMs }, { count: o.nodes, limits, redis }, async ({ sink, nodes }) => {
    const { acked, seconds } = await nodes.inject(o.rate * o.failSeconds, 'rstop');
    const server = await backend.serverOf('sink.test');
    const loops = () => Promise.all(nodes.nodes.map((n) => eventLoopDelay(n.process)));
    nodes.release();
    const lead = ((o.failSeconds - o.awaySeconds) * 1000) / 2;
    await sleep(Math.min(1000, lead / 2));
    await loops(); // resets every node's histogram: the baseline window starts
    await sleep(lead - Math.min(1000, lead / 2));
    const baseline = await loops(); // ... and ends; the stopped window starts
    const stopAt = Date.now();
    server.pause();
    await sleep(o.awaySeconds * 1000);
    const stopped = await loops();
    const contAt = Date.now();
    server.resume();
    const lost = await waitForIds(sink, acked, (o.failSeconds * 3 + 60) * 1000).then(
      () => '',
      (err: Error) => err.message,
    );
    await sleep(1000);
    const times = sink.arrivals.map((a) => a.at);
    const gap = largestGap(times, stopAt, contAt);
    const downRecords = nodes.nodes.map((_, i) => nodes.records(i).find((r) => r.event === 'redis_down' && recordTime(r) >= stopAt));
    const down = firstRecordAfter(nodes, stopAt, (r) => r.event === 'redis_down');
    const back = firstRecordAfter(nodes, contAt, (r) => r.event === 'redis_up');
    const charged = attemptsCharged(nodes);
    const t = tally(acked, sink.arrivals.map((a) => a.messageId));
    const loopMax = Math.max(...stopped.map((l) => l.max_ms));
    const during = times.filter((x) => x >= stopAt && x < contAt).length;
    const opened = sessionsOpened(sink, stopAt, contAt);
    return {
      scenario: 'redis stopped',
      redis: backend.kind,
      stopped: `127.0.0.1:${server.port}`,
      nodes: o.nodes,
      rate_per_s: o.rate,
      max_connections: m,
      command_timeout_ms: o.commandTimeout,
      messages: acked.length,
      inject_s: round(seconds, 2),
      stopped_s: round((contAt - stopAt) / 1000, 2),
      down_after_ms: slashed(down),
      down_errors: [...new Set(downRecords.map((r) => (r ? `${String(r.what)}:${String(r.err)}` : '-')))].join('|'),
      max_gap_stopped_ms: gap,
      gap_limit_ms: o.commandTimeout + GAP_ALLOWANCE_MS,
      rate_stopped_per_s: round((during * 1000) / (contAt - stopAt), 1),
      sessions_opened_stopped: opened.count,
      sessions_opened_stopped_of: opened.of,
      open_at_stop_transactions: openAtTransactions(sink, stopAt),
      ...peakFields('_stopped', sessionPeak(sink, stopAt, stopAt, contAt)),
      ...peakFields('', sessionPeak(sink, stopAt)),
      loop_p99_ms: stopped.map((l) => l.p99_ms).join('/'),
      loop_max_ms: stopped.map((l) => l.max_ms).join('/'),
      baseline_loop_max_ms: baseline.map((l) => l.max_ms).join('/'),
      loop_target_ms: LOOP_TARGET_MS,
      back_after_ms: slashed(back),
      attempts_retried: charged.retried,
      deferred: charged.deferred,
      missing: t.missing.length,
      duplicated: t.duplicated.length,
      ...(lost ? { error: lost } : {}),
      ok: gap <= o.commandTimeout + GAP_ALLOWANCE_MS && loopMax < LOOP_TARGET_MS && down.every((x) => x !== undefined) && t.missing.length === 0,
    };
  });
}
