/**
 * Limits shared by several Tern nodes through Redis, seen at one destination (issue #17):
 * the message rate, the connection limit, and what it costs Redis per message.
 */
import type { RedisBackend } from './redis-backend.js';
import { burstOf, perNode, sessionNodes, sleep, withSetup } from './redis-scenario.js';
import type { RedisBenchOptions } from './redis-scenario.js';
import { connectionFigures, maxAtOnce, rateFigures, round } from './sink-figures.js';

/**
 * limits.ini max_message_rate=R/s (burst B) for sink.test on every node; R × S messages
 * queued evenly over the nodes, then released on all at once: every 1-s window at the sink
 * ≤ R + B, the average within ±3 % of R.
 */
export async function redisRate(backend: RedisBackend, o: RedisBenchOptions): Promise<Record<string, unknown>> {
  const burst = burstOf(o);
  const limits = `[sink.test]\nmax_message_rate=${o.rate}/s\nburst=${burst}\n`;
  return withSetup(backend, {}, { count: o.nodes, limits, redis: '' }, async ({ sink, nodes }) => {
    const { acked, seconds } = await nodes.inject(o.rate * o.rateSeconds, 'rate');
    const cpu0 = nodes.cpu();
    nodes.release();
    await sink.waitForArrivals(acked.length, (o.rateSeconds * 2 + 120) * 1000);
    const cpu = nodes.cpu() - cpu0;
    const { ok, ...figures } = rateFigures(
      sink.arrivals.map((a) => a.at),
      o.rate,
      burst,
    );
    return {
      scenario: 'redis rate',
      redis: backend.kind,
      nodes: o.nodes,
      rate_per_s: o.rate,
      burst,
      messages: acked.length,
      inject_s: round(seconds, 2),
      ...figures,
      per_node: perNode(sink, nodes.nodes.map((n) => n.name)),
      sink_sessions: sink.sessions.length,
      tern_cpu_s: round(cpu, 2),
      ok,
    };
  });
}

/**
 * limits.ini max_connections=M on every node, a sink that takes `sinkDelayMs` to answer
 * each final dot (mail waits for sessions): the most sessions at once at the sink (target
 * ≤ M, over all nodes together) and how much of the M was used while mail waited.
 */
export async function redisConnections(backend: RedisBackend, o: RedisBenchOptions): Promise<Record<string, unknown>> {
  const limits = `[sink.test]\nmax_connections=${o.maxConnections}\n`;
  return withSetup(backend, { dataDelayMs: o.sinkDelayMs }, { count: o.nodes, limits, redis: '' }, async ({ sink, nodes }) => {
    const { acked, seconds } = await nodes.inject(o.connectionsMessages, 'conn');
    const cpu0 = nodes.cpu();
    nodes.release();
    await sink.waitForArrivals(acked.length, 600_000);
    const cpu = nodes.cpu() - cpu0;
    const { ok, ...figures } = connectionFigures(
      sink.arrivals.map((a) => a.at),
      sink.sessions,
      o.maxConnections,
    );
    const of = sessionNodes(sink);
    // Each node's own most at once: with limits per node (no coordinator) each reaches M.
    const mostPerNode = nodes.nodes.map((n) => maxAtOnce(sink.sessions.filter((s) => of.get(s.id) === n.name))).join('/');
    return {
      scenario: 'redis connections',
      redis: backend.kind,
      nodes: o.nodes,
      max_connections: o.maxConnections,
      messages: acked.length,
      sink_delay_ms: o.sinkDelayMs,
      inject_s: round(seconds, 2),
      ...figures,
      max_at_once_per_node: mostPerNode,
      per_node: perNode(sink, nodes.nodes.map((n) => n.name)),
      tern_cpu_s: round(cpu, 2),
      ok,
    };
  });
}

/** The Redis commands Tern sent between two `INFO commandstats`, less those INFO calls. */
async function commandsSince(backend: RedisBackend, before: Map<string, number>): Promise<Map<string, number>> {
  const after = await backend.commandsByName();
  const diff = new Map<string, number>();
  for (const [name, n] of after) diff.set(name, n - (before.get(name) ?? 0));
  // The INFO that took `before` on each server is counted in `after`.
  diff.set('info', (diff.get('info') ?? 0) - backend.servers);
  for (const [name, n] of diff) if (n <= 0) diff.delete(name);
  return diff;
}

/**
 * max_message_rate=1000/s to one destination and max_connections=M (--commands-connections,
 * default 60: as many sessions as the sink needs for 1,000 msg/s several times over), N nodes, the
 * backlog queued first: Redis commands per delivered message, from `INFO commandstats`
 * summed over every server before the release and after the last arrival (plus 2 s for
 * unused tokens to be given back). Target ≤ 0.2.
 */
export async function redisCommands(backend: RedisBackend, o: RedisBenchOptions): Promise<Record<string, unknown>> {
  const limits = `[sink.test]\nmax_message_rate=${o.commandsRate}/s\nmax_connections=${o.commandsConnections}\n`;
  // outbound.ini's max_domain_connections (default 20) caps limits.ini's max_connections
  // (the lower wins): raised to M, so that limits.ini speaks.
  const sessions = o.commandsSessions ?? 64;
  const outbound = `concurrency_max=${sessions}\nmax_domain_connections=${o.commandsConnections}`;
  return withSetup(backend, {}, { count: o.nodes, limits, redis: '', outbound }, async ({ sink, nodes }) => {
    const { acked, seconds } = await nodes.inject(o.commandsMessages, 'cmd');
    // 1,000 msg/s: the harness must not spend its CPU parsing the daemons' records.
    nodes.discardLogs();
    const before = await backend.commandsByName();
    const cpu0 = nodes.cpu();
    nodes.release();
    await sink.waitForArrivals(acked.length, 600_000);
    const cpu = nodes.cpu() - cpu0;
    await sleep(2000);
    const commands = await commandsSince(backend, before);
    const total = [...commands.values()].reduce((a, b) => a + b, 0);
    const times = sink.arrivals.map((a) => a.at);
    const spanS = (Math.max(...times) - Math.min(...times)) / 1000;
    const perMessage = total / sink.arrivals.length;
    // Every command by name, the busiest first: where the commands go (a script's own count as `evalsha`).
    const top = [...commands]
      .sort((a, b) => b[1] - a[1])
      .map(([name, n]) => `${name}:${n}`)
      .join('/');
    return {
      scenario: 'redis commands',
      redis: backend.kind,
      nodes: o.nodes,
      rate_limit_per_s: o.commandsRate,
      max_connections: o.commandsConnections,
      concurrency_max: sessions,
      messages: acked.length,
      inject_s: round(seconds, 2),
      delivered: sink.arrivals.length,
      msgs_per_s: round(sink.arrivals.length / spanS),
      redis_commands: total,
      commands_per_message: round(perMessage, 3),
      target: 0.2,
      // Round trips that ran a script (INFO commandstats counts each command a script runs too).
      script_calls_per_message: round(((commands.get('evalsha') ?? 0) + (commands.get('eval') ?? 0)) / sink.arrivals.length, 3),
      commands: top,
      max_sessions_at_once: maxAtOnce(sink.sessions),
      sink_sessions: sink.sessions.length,
      per_node: perNode(sink, nodes.nodes.map((n) => n.name)),
      tern_cpu_s: round(cpu, 2),
      ok: perMessage <= 0.2,
    };
  });
}
