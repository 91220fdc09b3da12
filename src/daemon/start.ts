import { resolve } from 'node:path';
import { closedError, systemClock } from '../core/index.js';
import type { Clock } from '../core/index.js';
import type { LimitCoordinator } from '../cluster/index.js';
import { ConfigSource } from '../config/index.js';
import type { TernConfig } from '../config/index.js';
import { LogOutput, createLogger, pinoLevel, routeProcessWarnings } from '../log/index.js';
import type { Logger } from '../log/index.js';
import { HookRunner } from '../hooks/index.js';
import { loadStartup } from './startup.js';
import { composeParts } from './compose.js';
import { ConfigReloader } from './config-reloader.js';
import { Lifecycle, closeWithin } from './lifecycle.js';
import type { ShutdownStep } from './lifecycle.js';

export interface DaemonOptions {
  readonly configDir: string;
  readonly queueDir: string;
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Installs SIGHUP/SIGTERM/SIGINT handlers (the CLI does; embedders may not want it). */
  readonly handleSignals?: boolean;
  /** Set when this process is one of `nodes=N` workers (daemon/cluster-worker.ts). */
  readonly worker?: WorkerRole;
  /** Where limits.ini's slots and tokens are kept: a worker's asks the primary; default in-process. */
  readonly coordinator?: LimitCoordinator;
}

/** What makes a worker of the daemon: its shard, its API socket, whether it takes mail. */
export interface WorkerRole {
  /** Written into new message ids (undefined: the unsharded queue/ of a single process). */
  readonly shard?: number;
  /** `shard` on every log record: K, or `queue` for the unsharded queue/. */
  readonly label: string;
  readonly adminSocket: string;
  /** false: a shard no worker owns (after nodes went down), delivered but not fed. */
  readonly listen: boolean;
}

export interface RunningDaemon {
  readonly addresses: readonly { host: string; port: number }[];
  readonly admin?: { host: string; port: number };
  /** SIGHUP: flush deferred entries and reload config. */
  hangup(): void;
  /** SIGTERM: stop listening, drain deliveries up to shutdown_timeout, close the queue. */
  shutdown(): Promise<void>;
  /** Resolves once the daemon has shut down (by signal or shutdown()), whatever failed on the way. */
  readonly stopped: Promise<void>;
  /** Entries queued and in flight now, and whether the queue of earlier runs has been read back whole. */
  queue(): { queued: number; inFlight: number; recovered: boolean };
}

// Bounds for the parts whose graceful close waits on peers: past them, they are destroyed.
const ADMIN_CLOSE_MS = 2000;
const LISTENER_CLOSE_MS = 2000;

/** The daemon's logger, and a hand on its level and format for reloads. */
function daemonLogger(config: TernConfig): { logger: Logger; output: LogOutput } {
  const output = new LogOutput({ format: config.log.format, prettyOnTty: config.log.pretty_on_tty });
  const logger = createLogger({ level: config.log.level, destination: output });
  return { logger, output };
}

/** Builds every part, wires them, recovers the queue and starts listening. */
export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const configDir = resolve(options.configDir);
  const clock = options.clock ?? systemClock;
  // Owning the process, Tern keeps its stdout to JSON records: Node's warnings join them.
  const warnings = options.handleSignals ? routeProcessWarnings() : undefined;
  // The same reading as `tern config check`: config files, listener TLS, plugins (loaded
  // before anything runs, so a broken plugin stops the start like a broken config).
  let startup: Awaited<ReturnType<typeof loadStartup>>;
  try {
    startup = await loadStartup(configDir);
  } catch (err) {
    warnings?.restore();
    throw err;
  }
  const source = new ConfigSource(startup.config);
  const config = source.current;
  const own = options.logger ? undefined : daemonLogger(config);
  const base = options.logger ?? own!.logger;
  // A worker's records say which shard they come from, as a structured field.
  const logger = options.worker ? base.child({ shard: options.worker.shard ?? options.worker.label }) : base;
  warnings?.attach(logger);
  const hooks = new HookRunner([...startup.plugins], logger);
  if (startup.plugins.length) logger.info({ plugins: hooks.names }, 'plugins loaded');
  for (const w of startup.warnings) logger.warn({ file: w.file, problem: w.problem, equivalent: w.equivalent ?? null }, 'config file not read by Tern');
  // log.ini applies at once: the level to the next record, the format to the next line.
  source.subscribe((next) => {
    logger.level = pinoLevel(next.log.level);
    own?.output.setFormat(next.log.format, next.log.pretty_on_tty);
  });

  const worker = options.worker;
  const parts = composeParts(source, { queueDir: options.queueDir, logger, clock, hooks, shard: worker?.shard, adminSocket: worker?.adminSocket, coordinator: options.coordinator });
  const { spool, agent, scheduler, metrics, listener, admin } = parts;
  const { removedTemporary } = await spool.open();
  const addresses = worker?.listen === false ? [] : await listener.listen();
  const adminAddress = await admin.listen();

  // Haraka's process_title: live counts in ps/top.
  const showTitle = () => {
    process.title = `tern${worker ? ` shard ${worker.label}` : ''}: queued=${scheduler.size} in_flight=${scheduler.inFlightCount} sessions=${agent.openSessions}`;
  };
  showTitle();
  const titleTimer = setInterval(showTitle, 5000).unref();

  const reloader = new ConfigReloader(source, { configDir, logger, onReload: (ok) => metrics.onReload(ok) });
  reloader.start();

  const recoveryAbort = new AbortController();
  let recovering: Promise<void> = Promise.resolve();
  let listenerClosed: Promise<void> = Promise.resolve();
  let aborted = 0;
  let recoveryDone = false;

  const steps = (): ShutdownStep[] => [
    {
      step: 'config watch',
      run: () => {
        clearInterval(titleTimer);
        reloader.close();
      },
    },
    { step: 'admin API', run: () => closeWithin(admin, ADMIN_CLOSE_MS) },
    {
      step: 'queue recovery',
      run: () => {
        recoveryAbort.abort();
        return recovering;
      },
    },
    // The listener stops accepting while deliveries drain; its sessions get until the drain ends (and a little more).
    { step: 'listener', run: () => void (listenerClosed = listener.close()) },
    { step: 'scheduler', run: async () => void ({ aborted } = await scheduler.close()) },
    { step: 'delivery', run: () => agent.close() },
    // After delivery, whose closing sessions give their slots back through it.
    { step: 'coordination', run: () => parts.coordinator.close() },
    { step: 'policy', run: () => parts.policy.close() },
    { step: 'redis', run: () => parts.redis?.close() ?? Promise.resolve() },
    { step: 'listener sessions', run: () => closeWithin({ close: () => listenerClosed, destroy: () => listener.destroy(), closed: true }, LISTENER_CLOSE_MS) },
    { step: 'queue', run: () => spool.close() },
  ];
  const lifecycle = new Lifecycle({
    logger,
    handleSignals: !!options.handleSignals,
    hangup: () => {
      // A SIGHUP while the daemon stops changes nothing: the queue is being left as it is.
      if (scheduler.closed) return logger.info({ reply: closedError('scheduler').reply }, 'SIGHUP ignored: shutting down');
      reloader.reload('SIGHUP');
      const flushed = scheduler.flush();
      logger.info({ flushed, queued: scheduler.size, in_flight: scheduler.inFlightCount }, 'queue flushed');
    },
    steps,
    finish: async () => {
      logger.info({ aborted_in_flight: aborted, queued: scheduler.size }, 'tern stopped; queue intact');
      warnings?.restore();
      await new Promise<void>((r) => logger.flush(() => r()));
    },
  });

  // Announced once everything is in place (signals, config watch): whoever waits for
  // this line may act on the daemon at once.
  // A worker's line is its own: 'tern listening' is the primary's, once every worker listens.
  logger.info({ addresses, admin: adminAddress ?? null, config: configDir, queue: spool.root, me: config.me }, worker ? 'worker listening' : 'tern listening');

  // The queue of an earlier run is read back while mail is already accepted and delivered:
  // with a million entries, the listener does not wait for the scan.
  scheduler.recoveryStarted();
  recovering = spool
    .recover({ onBatch: (heads) => scheduler.addRecovered(heads), signal: recoveryAbort.signal })
    .then((report) => {
      // Only a whole reading counts: one stopped by shutdown left entries unread on disk.
      recoveryDone = !recoveryAbort.signal.aborted;
      for (const c of report.corrupt) logger.error({ file: c.file, error: c.error, moved_to: 'corrupt/' }, 'corrupt queue entry moved aside');
      logger.info(
        { entries: report.recovered, corrupt: report.corrupt.length, removed_orphans: report.removedOrphans, removed_temporary: removedTemporary, queued: scheduler.size },
        recoveryAbort.signal.aborted ? 'queue recovery stopped by shutdown' : 'queue recovered',
      );
    })
    .catch((err: Error) => logger.error({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code } }, 'queue recovery failed; entries not yet read stay on disk until the next start'))
    .finally(() => scheduler.recoveryFinished());
  return {
    addresses,
    admin: adminAddress,
    hangup: () => lifecycle.hangup(),
    shutdown: () => lifecycle.shutdown(),
    stopped: lifecycle.stopped,
    queue: () => ({ queued: scheduler.size, inFlight: scheduler.inFlightCount, recovered: recoveryDone }),
  };
}
