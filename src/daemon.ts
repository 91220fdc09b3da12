import { existsSync, statSync, watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { join, resolve } from 'node:path';
import { systemClock } from './core/index.js';
import type { Clock } from './core/index.js';
import { configChanges, loadConfig, REWRITE_FILE } from './config/index.js';
import { DeliveryStatusRewriter } from './rewrite/index.js';
import type { TernConfig } from './config/index.js';
import { createLogger, pinoLevel, routeProcessWarnings } from './log/index.js';
import { DispositionSink } from './log/index.js';
import type { Logger } from './log/index.js';
import { HookRunner } from './hooks/index.js';
import { loadStartup } from './startup.js';
import type { Startup } from './startup.js';
import { DnsResolver, confirmedClientName } from './dns/index.js';
import type { ResolverOptions } from './dns/index.js';
import { DiskSpool } from './spool/index.js';
import { DeliveryAgent } from './delivery/index.js';
import { Scheduler, SuspensionFile } from './scheduler/index.js';
import { Intake } from './intake/index.js';
import { ReportGenerator } from './reports/index.js';
import { Listener } from './listener/index.js';
import { AdminApi, TernMetrics } from './control/index.js';

export interface DaemonOptions {
  readonly configDir: string;
  readonly queueDir: string;
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Installs SIGHUP/SIGTERM/SIGINT handlers (the CLI does; embedders may not want it). */
  readonly handleSignals?: boolean;
}

export interface RunningDaemon {
  readonly addresses: readonly { host: string; port: number }[];
  readonly admin?: { host: string; port: number };
  /** SIGHUP: flush deferred entries and reload config. */
  hangup(): void;
  /** SIGTERM: stop listening, drain deliveries up to shutdown_timeout, close the queue. */
  shutdown(): Promise<void>;
  /** Resolves once the daemon has shut down (by signal or shutdown()). */
  readonly stopped: Promise<void>;
}

function buildResolver(config: TernConfig, clock: Clock, onFailure?: ResolverOptions['onFailure']): DnsResolver {
  return new DnsResolver({
    onFailure,
    servers: config.dns.serverList,
    timeoutMs: config.dns.timeout * 1000,
    cacheMaxEntries: config.dns.cache_max_entries,
    clock,
    use0x20: config.dns.use_0x20,
  });
}

/** Builds every part, wires them, recovers the queue and starts listening. */
export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const configDir = resolve(options.configDir);
  const clock = options.clock ?? systemClock;
  // Owning the process, Tern keeps its stdout to JSON records: Node's warnings join them.
  const warnings = options.handleSignals ? routeProcessWarnings() : undefined;
  // The same reading as `tern config check`: config files, listener TLS, plugins.
  let startup: Startup;
  try {
    startup = await loadStartup(configDir);
  } catch (err) {
    warnings?.restore();
    throw err;
  }
  let config: TernConfig = startup.config;
  const plugins = [...startup.plugins];
  const logger = options.logger ?? createLogger({ level: config.log.level, format: config.log.format, prettyOnTty: config.log.pretty_on_tty });
  warnings?.attach(logger);
  const hooks = new HookRunner(plugins, logger);
  if (plugins.length) logger.info({ plugins: hooks.names }, 'plugins loaded');
  for (const w of startup.warnings) logger.warn({ file: w.file, problem: w.problem, equivalent: w.equivalent ?? null }, 'config file not read by Tern');
  const dnsFailed: ResolverOptions['onFailure'] = (type, reason) => metrics.onDnsFailure(type, reason);
  let resolver = buildResolver(config, clock, dnsFailed);
  // Client names get a resolver (and cache) of their own: connections from many addresses
  // must not push delivery's MX and address records out of its cache.
  let nameResolver = buildResolver(config, clock, dnsFailed);

  const spool = new DiskSpool(resolve(options.queueDir));
  const { removedTemporary } = await spool.open();

  const agent = new DeliveryAgent(config, { resolver: () => resolver, readBody: (e) => spool.body(e), logger, hooks, clock });
  // Every disposition is logged, shown to plugins (log_disposition) and counted from here.
  const dispositions = new DispositionSink(logger);
  if (hooks.has('log_disposition')) dispositions.subscribe({ record: (record) => void hooks.logDisposition(record) });
  const intake = new Intake({ spool, dispositions, clock, alwaysSplit: () => config.outbound.always_split });
  const reporter = new ReportGenerator(config, spool, intake, logger, clock);
  const scheduler = new Scheduler({
    config: config.outbound,
    routes: config.routes,
    spool,
    deliverer: agent,
    logger,
    clock,
    reporter: (entry, events, outcome) => reporter.report(entry, events, outcome),
    hooks,
    suspensions: new SuspensionFile(spool.root),
  });
  intake.handTo(scheduler);
  scheduler.on('disposition', (event) => dispositions.emit(event));
  const metrics = new TernMetrics(scheduler, () => agent.openSessions, { queueDir: spool.root, now: () => clock.now() });
  dispositions.subscribe({ event: (event) => metrics.onDisposition(event) });
  scheduler.on('attempt', (entry, events, ms) => metrics.onAttempt(entry, events, ms));
  const listener = new Listener(
    config,
    intake,
    logger,
    clock,
    hooks,
    // The resolver of the moment: a reload swaps it, and the next lookup uses the new one.
    { clientName: (address) => confirmedClientName(nameResolver, address), onRejection: (record) => metrics.onRejection(record.reason, record.command) },
  );
  const admin = new AdminApi(config.http, scheduler, metrics, logger, clock);
  const addresses = await listener.listen();
  const adminAddress = await admin.listen();

  // Haraka's process_title: live counts in ps/top.
  const showTitle = () => {
    process.title = `tern: queued=${scheduler.size} in_flight=${scheduler.inFlightCount} sessions=${agent.openSessions}`;
  };
  showTitle();
  const titleTimer = setInterval(showTitle, 5000).unref();

  let lastReloadError: string | undefined;
  const reload = (why: string) => {
    try {
      const next = loadConfig(configDir);
      const changes = configChanges(config, next);
      config = next;
      resolver = buildResolver(config, clock, dnsFailed);
      nameResolver = buildResolver(config, clock, dnsFailed);
      listener.updateConfig(config);
      agent.updateConfig(config);
      reporter.updateConfig(config);
      admin.updateConfig(config.http);
      logger.level = pinoLevel(config.log.level);
      metrics.onReload(true);
      scheduler.updateConfig(config.outbound, config.routes);
      lastReloadError = undefined;
      // A file that went takes its settings with it: every key is back to its default, which
      // nobody meant to happen quietly (a deleted outbound.ini turns delivery back on).
      for (const c of changes.filter((c) => c.removed)) {
        logger.warn({ why, file: c.file, reverted: c.keys }, 'config file removed; its settings are back to their defaults');
      }
      const changed = changes.filter((c) => !c.removed).map((c) => ({ file: c.file, added: c.added || undefined, keys: c.keys.map((k) => k.key) }));
      logger.info({ why, changed, rewrite_rules: new DeliveryStatusRewriter(config.rewrite).size }, 'config reloaded');
    } catch (err) {
      // A broken edit never takes the running daemon down: the previous config stays in force.
      // The same problem is reported once, not at every periodic check.
      metrics.onReload(false);
      const error = (err as Error).message;
      const level = error === lastReloadError && why !== 'SIGHUP' ? 'debug' : 'error';
      lastReloadError = error;
      logger[level]({ why, error, code: (err as { code?: string }).code }, 'config reload failed; keeping the previous config');
    }
  };

  // Where file watching is unreliable (network and some container mounts), the rewrite
  // rules are still picked up: their file is checked every rewrite_ttl.
  const rewritePath = join(configDir, REWRITE_FILE);
  const rewriteStamp = () => (existsSync(rewritePath) ? statSync(rewritePath).mtimeMs : 0);
  let rewriteSeen = rewriteStamp();
  const rewriteCheck = () => {
    const stamp = rewriteStamp();
    if (stamp !== rewriteSeen) {
      rewriteSeen = stamp;
      reload('rewrite_ttl');
    }
    rewriteTimer = setTimeout(rewriteCheck, config.outbound.rewrite_ttl * 1000).unref();
  };
  let rewriteTimer = setTimeout(rewriteCheck, config.outbound.rewrite_ttl * 1000).unref();

  let debounce: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(configDir, () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => reload('file changed'), 200);
    });
    watcher.on('error', (err) => logger.warn({ error: err.message }, 'config watch failed; SIGHUP still reloads'));
  } catch (err) {
    logger.warn({ error: (err as Error).message }, 'config watch unavailable; SIGHUP still reloads');
  }

  const recoveryAbort = new AbortController();
  let recovering: Promise<void> = Promise.resolve();
  let stopping: Promise<void> | undefined;
  let markStopped!: () => void;
  const stopped = new Promise<void>((r) => (markStopped = r));

  const hangup = () => {
    reload('SIGHUP');
    const flushed = scheduler.flush();
    logger.info({ flushed, queued: scheduler.size, in_flight: scheduler.inFlightCount }, 'queue flushed');
  };

  const onHup = () => hangup();
  const onTerm = (signal: NodeJS.Signals) => {
    logger.info({ signal }, 'shutting down');
    void shutdown();
  };

  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      clearTimeout(debounce);
      clearTimeout(rewriteTimer);
      clearInterval(titleTimer);
      await admin.close();
      watcher?.close();
      recoveryAbort.abort();
      await recovering;
      const listenerClosed = listener.close();
      const { aborted } = await scheduler.stop(config.outbound.shutdown_timeout * 1000);
      agent.close();
      await Promise.race([listenerClosed, new Promise((r) => setTimeout(r, 2000).unref())]);
      await spool.close();
      logger.info({ aborted_in_flight: aborted, queued: scheduler.size }, 'tern stopped; queue intact');
      warnings?.restore();
      if (options.handleSignals) {
        process.off('SIGHUP', onHup);
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onTerm);
      }
      await new Promise<void>((r) => logger.flush(() => r()));
      markStopped();
    })();
    return stopping;
  };

  if (options.handleSignals) {
    process.on('SIGHUP', onHup);
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onTerm);
  }
  // Announced once everything is in place (signals, config watch): whoever waits for
  // this line may act on the daemon at once.
  logger.info({ addresses, admin: adminAddress ?? null, config: configDir, queue: spool.root, me: config.me }, 'tern listening');

  // The queue of an earlier run is read back while mail is already accepted and delivered:
  // with a million entries, the listener does not wait for the scan.
  scheduler.recoveryStarted();
  recovering = spool
    .recover({ onBatch: (heads) => scheduler.addRecovered(heads), signal: recoveryAbort.signal })
    .then((report) => {
      for (const c of report.corrupt) logger.error({ file: c.file, error: c.error, moved_to: 'corrupt/' }, 'corrupt queue entry moved aside');
      logger.info(
        { entries: report.recovered, corrupt: report.corrupt.length, removed_orphans: report.removedOrphans, removed_temporary: removedTemporary, queued: scheduler.size },
        recoveryAbort.signal.aborted ? 'queue recovery stopped by shutdown' : 'queue recovered',
      );
    })
    .catch((err: Error) => logger.error({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code } }, 'queue recovery failed; entries not yet read stay on disk until the next start'))
    .finally(() => scheduler.recoveryFinished());
  return { addresses, admin: adminAddress, hangup, shutdown, stopped };
}
