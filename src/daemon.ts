import { existsSync, statSync, watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { join, resolve } from 'node:path';
import { systemClock } from './core/index.js';
import type { Clock } from './core/index.js';
import { configChanges, loadConfig, REWRITE_FILE } from './config/index.js';
import { DeliveryStatusRewriter } from './rewrite/index.js';
import type { TernConfig } from './config/index.js';
import { createLogger, pinoLevel, routeProcessWarnings } from './log/index.js';
import type { DispositionRecord, Logger } from './log/index.js';
import { HookRunner, loadPlugins } from './hooks/index.js';
import { DnsResolver, confirmedClientName } from './dns/index.js';
import { DiskSpool } from './spool/index.js';
import { DeliveryAgent } from './delivery/index.js';
import { DsnReporter, Scheduler } from './scheduler/index.js';
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

function buildResolver(config: TernConfig, clock: Clock): DnsResolver {
  return new DnsResolver({
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
  let config: TernConfig;
  try {
    config = loadConfig(configDir);
  } catch (err) {
    warnings?.restore();
    throw err;
  }
  // Plugins load before anything runs, so a broken plugin stops the start like a broken config.
  const plugins = await loadPlugins(configDir);
  let hooks: HookRunner | undefined;
  const logger =
    options.logger ??
    createLogger({
      level: config.log.level,
      format: config.log.format,
      prettyOnTty: config.log.pretty_on_tty,
      onDisposition: (record) => void hooks?.logDisposition(record as unknown as DispositionRecord),
    });
  warnings?.attach(logger);
  hooks = new HookRunner(plugins, logger);
  if (plugins.length) logger.info({ plugins: hooks.names }, 'plugins loaded');
  let resolver = buildResolver(config, clock);
  // Client names get a resolver (and cache) of their own: connections from many addresses
  // must not push delivery's MX and address records out of its cache.
  let nameResolver = buildResolver(config, clock);

  const spool = new DiskSpool(resolve(options.queueDir));
  const { removedTemporary } = await spool.open();

  const agent = new DeliveryAgent(config, { resolver: () => resolver, bodyBytesOrStream: (e) => spool.bodyBytesOrStream(e), logger, hooks, clock });
  // The reporter queues reports through the scheduler it serves; the indirection breaks the cycle.
  const enqueue = (entries: Parameters<Scheduler['add']>[0]) => scheduler.add(entries);
  const reporter = new DsnReporter(config, spool, (entries) => enqueue(entries), logger, clock, (kind) => metrics.onReport(kind));
  const scheduler: Scheduler = new Scheduler(config.outbound, spool, agent, logger, clock, (entry, records, outcome) => reporter.report(entry, records, outcome), hooks, config.routes);
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
    // The resolver of the moment: a reload swaps it, and the next lookup uses the new one.
    { clientName: (address) => confirmedClientName(nameResolver, address), onRejection: (record) => metrics.onRejection(record.reason) },
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
      resolver = buildResolver(config, clock);
      nameResolver = buildResolver(config, clock);
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
