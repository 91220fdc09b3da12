import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../core/index.js';
import { changed } from '../config/index.js';
import type { ConfigHandle, TernConfig } from '../config/index.js';
import { DispositionSink } from '../log/index.js';
import type { Logger } from '../log/index.js';
import type { HookRunner } from '../hooks/index.js';
import { DnsResolver, confirmedClientName, resolveMxPlan } from '../dns/index.js';
import { DestinationKeys, LocalCoordinator, RedisCoordinator, RedisDestinationHealth, RedisLink, RedisSharedCaches, defaultNodeId } from '../cluster/index.js';
import type { LimitCoordinator, NodeCounts } from '../cluster/index.js';
import type { ResolverOptions } from '../dns/index.js';
import { DiskSpool } from '../spool/index.js';
import { DeliveryAgent } from '../delivery/index.js';
import { Scheduler, SuspensionFile, gateSettings } from '../scheduler/index.js';
import { Intake } from '../intake/index.js';
import { DkimSigningPool } from '../dkim/index.js';
import { ReportGenerator } from '../reports/index.js';
import { Listener } from '../listener/index.js';
import { AdminApi, TernMetrics, buildInfo } from '../control/index.js';
import { policyParts } from './policy-parts.js';
import type { PolicyParts } from './policy-parts.js';

/** What composeParts needs besides the config. */
export interface CompositionContext {
  readonly queueDir: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly hooks: HookRunner;
  /** Where limits.ini's slots and tokens are kept; in-process (LocalCoordinator) unless a node=N worker's is given. */
  readonly coordinator?: LimitCoordinator;
  /** A worker's shard (`nodes=N`): written into message ids. */
  readonly shard?: number;
  /** A worker's admin API socket, instead of http.ini's address. */
  readonly adminSocket?: string;
}

/** Every long-lived part of a running daemon, wired together but not yet started. */
export interface Parts {
  readonly spool: DiskSpool;
  readonly agent: DeliveryAgent;
  readonly scheduler: Scheduler;
  readonly metrics: TernMetrics;
  readonly listener: Listener;
  readonly admin: AdminApi;
  readonly coordinator: LimitCoordinator;
  /** redis.ini enabled: this node's link to the state it shares with other nodes (issue #17). */
  readonly redis?: RedisLink;
  /** Suspensions and overrides (shared through Redis when it is on) and automation.ini. */
  readonly policy: PolicyParts;
}

type DnsFailure = ResolverOptions['onFailure'];

function buildResolver(config: TernConfig, clock: Clock, onFailure: DnsFailure): DnsResolver {
  return new DnsResolver({
    onFailure,
    servers: config.dns.serverList,
    timeoutMs: config.dns.timeout * 1000,
    cacheMaxEntries: config.dns.cache_max_entries,
    clock,
    use0x20: config.dns.use_0x20,
  });
}

/**
 * Resolvers follow dns.ini (and /etc/resolv.conf when it names the servers): a new one
 * only when those change, so that any other reload keeps the cache.
 */
function resolvers(config: ConfigHandle, clock: Clock, onFailure: DnsFailure) {
  let delivery = buildResolver(config.current, clock, onFailure);
  // Client names get a resolver (and cache) of their own: connections from many addresses
  // must not push delivery's MX and address records out of its cache.
  let names = buildResolver(config.current, clock, onFailure);
  config.subscribe((next, prev, changes) => {
    if (!changed(changes, 'dns.ini') && JSON.stringify(prev.dns.serverList) === JSON.stringify(next.dns.serverList)) return;
    delivery = buildResolver(next, clock, onFailure);
    names = buildResolver(next, clock, onFailure);
  });
  // Read at each lookup: the next one after a reload uses the new resolver.
  return { delivery: () => delivery, names: () => names };
}

/**
 * The only place that builds concrete classes and connects them (DESIGN.md). Each part
 * reads the config through the handle; none is started here.
 */
export function composeParts(config: ConfigHandle, ctx: CompositionContext): Parts {
  const { logger, clock, hooks } = ctx;
  // Failed lookups are counted; metrics exists by the time the first lookup is made.
  const dns = resolvers(config, clock, (type, reason) => metrics.onDnsFailure(type, reason));
  const spool = new DiskSpool(resolve(ctx.queueDir), { shard: ctx.shard });
  // redis.ini is read at start (a change needs a restart): one link per node, shared by every part that uses Redis.
  const redisSettings = config.current.redis;
  // Under nodes=N each worker is a node of its own, also when redis.ini names the machine.
  const idOf = (shard: number | undefined) => (redisSettings.node_id === undefined ? defaultNodeId(shard) : `${redisSettings.node_id}${shard === undefined ? '' : `/shard-${shard}`}`);
  const nodeId = idOf(ctx.shard);
  // The machine's other workers, counted alive until Redis says otherwise (failure_mode=share splits among them).
  const smtpNodes = config.current.smtp.nodes;
  const workers = ctx.shard === undefined ? 1 : smtpNodes === 'cpus' ? availableParallelism() : smtpNodes;
  const peers = Array.from({ length: Math.max(1, workers, (ctx.shard ?? 0) + 1) }, (_, k) => idOf(ctx.shard === undefined ? undefined : k));
  const redis = redisSettings.enabled ? new RedisLink({ settings: redisSettings, nodeId, logger }) : undefined;
  const policy = policyParts(config, { queueDir: spool.root, logger, clock, redis, nodeId });
  // limits.ini's slots and tokens (and the rate's turns at the wire): in-process, or a nodes=N worker's link to the primary,
  // or with redis.ini every node's (each worker one of its own) shared with the others through Redis.
  const coordinator: LimitCoordinator = redis
    ? new RedisCoordinator({
        link: redis,
        settings: redisSettings,
        clock,
        logger,
        counts: (): NodeCounts => ({ queued: scheduler.size, in_flight: scheduler.inFlightCount, sessions: agent.openSessions }),
        peers,
        version: buildInfo(fileURLToPath(new URL('../../../', import.meta.url))).version,
      })
    : (ctx.coordinator ?? new LocalCoordinator(clock));
  // A worker's link to the primary is not asked when Redis shares the limits.
  if (redis && ctx.coordinator) void ctx.coordinator.close();
  // redis.ini: destination health (a probe lock lives as long as two connect timeouts, 5 s to 5 min), TLS-failure memory and MTA-STS policies shared with the other nodes.
  const shared = redis ? new RedisSharedCaches(redis) : undefined;
  const probeMs = () => Math.min(Math.max(config.current.outbound.connect_timeout * 2000, 5000), 300_000);
  const health = redis ? new RedisDestinationHealth(redis, { probeMs }) : undefined;
  const agent = new DeliveryAgent(config, { resolver: dns.delivery, bodyBytesOrStream: (e) => spool.bodyBytesOrStream(e), logger, hooks, clock, coordinator, ...(shared ? { shared } : {}) });
  // Every disposition is logged, shown to plugins (log_disposition) and counted from here.
  const dispositions = new DispositionSink(logger);
  if (hooks.has('log_disposition')) dispositions.subscribe({ record: (record) => void hooks.logDisposition(record) });
  // One way into the queue, for the listener and for reports; it hands entries to the scheduler.
  // DKIM signing runs in worker threads, which get the keys of each load of dkim.ini (the
  // config checked them already); a reload that changed it (new selectors, a rotated key)
  // signs the next message with them.
  const dkim = new DkimSigningPool(config.current.dkim);
  config.subscribe((next, _prev, changes) => {
    if (changed(changes, 'dkim.ini')) dkim.update(next.dkim);
  });
  const intake = new Intake({ spool, dispositions, clock, logger, alwaysSplit: () => config.current.outbound.always_split, dkim });
  const reporter = new ReportGenerator(config, spool, intake, logger, clock);
  // limits.ini: each domain's key (its MX site for scope=site and [mx:] sections) and limits, read live.
  const destinations = new DestinationKeys({
    limits: () => config.current.limits,
    localLimit: (domain) => gateSettings(config.current.outbound, config.current.routes)[0](domain),
    mxHosts: async (domain) => {
      const { outbound } = config.current;
      const plan = await resolveMxPlan(dns.delivery(), domain, { inetPrefer: outbound.inet_prefer, localMxOk: outbound.local_mx_ok });
      return plan.ok ? plan.hosts.map((h) => h.name) : undefined;
    },
    clock,
    overrides: policy.table,
  });
  const scheduler = new Scheduler({
    config: config.current.outbound,
    routes: config.current.routes,
    spool,
    deliverer: policy.observed(agent),
    logger,
    clock,
    reporter: (entry, events, outcome) => reporter.report(entry, events, outcome),
    hooks,
    suspensions: new SuspensionFile(spool.root),
    destinations,
    coordinator,
    ...(health ? { health } : {}),
  });
  intake.handTo(scheduler);
  scheduler.on('disposition', (event) => dispositions.emit(event));
  // The scheduler derives its retry schedule, destination gate and concurrency from outbound.ini and routes.ini.
  config.subscribe((next, _prev, changes) => {
    scheduler.updateConfig(next.outbound, next.routes);
    // Limits apply live: what waits for a slot or a token is weighed again under the new ones.
    if (changed(changes, 'limits.ini') || changed(changes, 'routes.ini') || changed(changes, 'outbound.ini')) scheduler.reshape();
  });
  const metrics = new TernMetrics(scheduler, () => agent.openSessions, { queueDir: spool.root, now: () => clock.now() });
  dispositions.subscribe({ event: (event) => metrics.onDisposition(event) });
  scheduler.on('attempt', (entry, events, ms) => metrics.onAttempt(entry, events, ms));
  const listener = new Listener(config, intake, logger, clock, hooks, {
    clientName: (address) => confirmedClientName(dns.names(), address),
    onRejection: (record) => metrics.onRejection(record.reason, record.command),
  });
  const admin = new AdminApi(config, scheduler, metrics, logger, clock, { socket: ctx.adminSocket, policy: policy.attach(scheduler), ...(coordinator instanceof RedisCoordinator ? { cluster: () => coordinator.status() } : {}) });
  return { spool, agent, scheduler, metrics, listener, admin, coordinator, ...(redis ? { redis } : {}), policy };
}
