import { resolve } from 'node:path';
import type { Clock } from '../core/index.js';
import { changed } from '../config/index.js';
import type { ConfigHandle, TernConfig } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { HookRunner } from '../hooks/index.js';
import { DnsResolver, confirmedClientName } from '../dns/index.js';
import { DiskSpool } from '../spool/index.js';
import { DeliveryAgent } from '../delivery/index.js';
import { DsnReporter, Scheduler } from '../scheduler/index.js';
import { Listener } from '../listener/index.js';
import { AdminApi, TernMetrics } from '../control/index.js';

/** What composeParts needs besides the config. */
export interface CompositionContext {
  readonly queueDir: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly hooks: HookRunner;
}

/** Every long-lived part of a running daemon, wired together but not yet started. */
export interface Parts {
  readonly spool: DiskSpool;
  readonly agent: DeliveryAgent;
  readonly scheduler: Scheduler;
  readonly metrics: TernMetrics;
  readonly listener: Listener;
  readonly admin: AdminApi;
}

function buildResolver(config: TernConfig, clock: Clock): DnsResolver {
  return new DnsResolver({
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
function resolvers(config: ConfigHandle, clock: Clock) {
  let delivery = buildResolver(config.current, clock);
  // Client names get a resolver (and cache) of their own: connections from many addresses
  // must not push delivery's MX and address records out of its cache.
  let names = buildResolver(config.current, clock);
  config.subscribe((next, prev, changes) => {
    if (!changed(changes, 'dns.ini') && JSON.stringify(prev.dns.serverList) === JSON.stringify(next.dns.serverList)) return;
    delivery = buildResolver(next, clock);
    names = buildResolver(next, clock);
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
  const dns = resolvers(config, clock);
  const spool = new DiskSpool(resolve(ctx.queueDir));
  const agent = new DeliveryAgent(config, { resolver: dns.delivery, readBody: (e) => spool.body(e), logger, hooks, clock });
  // The reporter queues reports through the scheduler it serves; the indirection breaks the cycle.
  const enqueue = (entries: Parameters<Scheduler['add']>[0]) => scheduler.add(entries);
  const reporter = new DsnReporter(config, spool, (entries) => enqueue(entries), logger, clock, (kind) => metrics.onReport(kind));
  const scheduler: Scheduler = new Scheduler(
    config.current.outbound,
    spool,
    agent,
    logger,
    clock,
    (entry, records, outcome) => reporter.report(entry, records, outcome),
    hooks,
    config.current.routes,
  );
  // The scheduler derives its retry schedule, destination gate and concurrency from outbound.ini and routes.ini.
  config.subscribe((next) => scheduler.updateConfig(next.outbound, next.routes));
  const metrics = new TernMetrics(scheduler, () => agent.openSessions);
  scheduler.on('disposition', (record, entry) => metrics.onDisposition(record, entry));
  scheduler.on('attempt', (entry, records, ms) => metrics.onAttempt(entry, records, ms));
  const listener = new Listener(
    config,
    {
      receive: () => spool.receive(),
      queued: (entries) => {
        metrics.onReceived(entries);
        scheduler.add(entries);
      },
    },
    logger,
    clock,
    hooks,
    { clientName: (address) => confirmedClientName(dns.names(), address), onRejection: (record) => metrics.onRejection(record.reason) },
  );
  const admin = new AdminApi(config, scheduler, metrics, logger, clock);
  return { spool, agent, scheduler, metrics, listener, admin };
}
