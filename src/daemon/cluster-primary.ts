import { copyFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigSource, loadConfig } from '../config/index.js';
import { CoordinatorHost, LocalCoordinator } from '../cluster/index.js';
import { systemClock } from '../core/index.js';
import type { IpcChannel, LimitCoordinator } from '../cluster/index.js';
import { ClusterAdminApi } from '../control/index.js';
import { LogOutput, createLogger, pinoLevel } from '../log/index.js';
import type { Logger } from '../log/index.js';
import type { ClusterPlan } from './cluster-plan.js';
import { ADMIN_SOCKET } from './cluster-worker.js';
import { Lifecycle, closeWithin } from './lifecycle.js';
import { WorkerSupervisor } from './worker-supervisor.js';

export interface PrimaryOptions {
  readonly configDir: string;
  readonly queueDir: string;
  readonly plan: ClusterPlan;
  /** The machine-wide limits the workers share (the in-process coordinator); none: each worker its share. */
  readonly coordinator?: LimitCoordinator;
  readonly handleSignals?: boolean;
}

export interface RunningPrimary {
  readonly addresses: readonly { host: string; port: number }[];
  readonly admin?: { host: string; port: number };
  hangup(): void;
  shutdown(): Promise<void>;
  readonly stopped: Promise<void>;
}

const ADMIN_CLOSE_MS = 2000;
/** Past each worker's shutdown_timeout, the time its queue and listener take to close. */
const WORKER_CLOSE_MARGIN_MS = 15_000;
/** Unix socket paths hold 107 bytes on Linux. */
const MAX_SOCKET_PATH = 100;

/**
 * `nodes=N` (issue #16): the process systemd sees. It forks the workers (one per queue
 * shard; they share the SMTP listener through node:cluster), restarts those that die,
 * serves the admin API by asking the workers, and relays SIGHUP (flush and reload) and
 * SIGTERM (each worker drains up to its shutdown_timeout; then the primary exits).
 */
export async function startPrimary(options: PrimaryOptions): Promise<RunningPrimary> {
  const configDir = resolve(options.configDir);
  const queueDir = resolve(options.queueDir);
  const source = new ConfigSource(loadConfig(configDir));
  const config = source.current;
  const output = new LogOutput({ format: config.log.format, prettyOnTty: config.log.pretty_on_tty });
  const logger: Logger = createLogger({ level: config.log.level, destination: output }).child({ role: 'primary' });
  // log.ini applies to the primary's records too, at its SIGHUP (workers reload on their own).
  source.subscribe((next) => {
    logger.level = pinoLevel(next.log.level);
    output.setFormat(next.log.format, next.log.pretty_on_tty);
  });
  const { slots } = options.plan;
  for (const slot of slots) {
    const socket = join(slot.dir, ADMIN_SOCKET);
    if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) throw new Error(`queue directory too deep for nodes=N: ${socket} is longer than ${MAX_SOCKET_PATH} bytes (a unix socket's limit)`);
    await mkdir(slot.dir, { recursive: true });
    // Suspensions and overrides of a single process's queue hold for the shards made from it.
    for (const file of ['suspensions.json', 'overrides.json']) {
      const legacy = join(queueDir, file);
      if (slot.dir !== queueDir && existsSync(legacy) && !existsSync(join(slot.dir, file))) await copyFile(legacy, join(slot.dir, file));
    }
  }

  const supervisor = new WorkerSupervisor(slots, logger);
  // The machine's limits live here: every worker asks this one coordinator (issue #16).
  const host = new CoordinatorHost(options.coordinator ?? new LocalCoordinator(systemClock));
  const detach = new Map<IpcChannel, () => void>();
  supervisor.on('channel', (channel: IpcChannel) => detach.set(channel, host.attach(channel)));
  // A worker's leases go with it: its slots are free at once for the others.
  supervisor.on('gone', (channel: IpcChannel) => {
    detach.get(channel)?.();
    detach.delete(channel);
  });
  const targets = () => supervisor.workers.map((w) => ({ label: w.slot.label, shard: w.slot.shard, socket: join(w.slot.dir, ADMIN_SOCKET), up: w.up, done: w.done }));
  const admin = new ClusterAdminApi(source, targets, logger);

  let addresses: { host: string; port: number }[];
  try {
    addresses = await supervisor.start();
  } catch (err) {
    await supervisor.stop(WORKER_CLOSE_MARGIN_MS);
    throw err;
  }
  const adminAddress = await admin.listen();

  const lifecycle = new Lifecycle({
    logger,
    handleSignals: !!options.handleSignals,
    hangup: () => {
      try {
        source.replace(loadConfig(configDir));
      } catch (err) {
        logger.warn({ err: { message: (err as Error).message } }, 'config not reloaded by the primary; the running config stays');
      }
      supervisor.signalAll('SIGHUP');
      logger.info({ workers: supervisor.workers.filter((w) => w.up).length }, 'SIGHUP sent to every worker');
    },
    steps: () => [
      { step: 'admin API', run: () => closeWithin(admin, ADMIN_CLOSE_MS) },
      { step: 'workers', run: () => supervisor.stop(source.current.outbound.shutdown_timeout * 1000 + WORKER_CLOSE_MARGIN_MS) },
      { step: 'coordination', run: () => host.close() },
    ],
    finish: async () => {
      logger.info({ workers: slots.length }, 'tern stopped; every worker stopped');
      await new Promise<void>((r) => logger.flush(() => r()));
    },
  });

  logger.info(
    {
      addresses,
      admin: adminAddress ?? null,
      config: configDir,
      queue: queueDir,
      me: config.me,
      nodes: options.plan.nodes,
      workers: supervisor.workers.map((w) => ({ shard: w.slot.shard ?? w.slot.label, pid: w.pid ?? null, takes_mail: w.slot.listen })),
    },
    'tern listening',
  );
  return { addresses, admin: adminAddress, hangup: () => lifecycle.hangup(), shutdown: () => lifecycle.shutdown(), stopped: lifecycle.stopped };
}
