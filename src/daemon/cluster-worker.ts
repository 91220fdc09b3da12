import { rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { IpcCoordinator, processChannel } from '../cluster/index.js';
import { startDaemon } from './start.js';
import type { RunningDaemon } from './start.js';
import { readWorkerEnv } from './worker-env.js';
import type { WorkerEnv } from './worker-env.js';

/** How long a worker's limit call waits for the primary before its local share answers. */
export const COORDINATION_TIMEOUT_MS = 1000;
/** How often a worker that takes no mail looks whether its shard is empty. */
const DRAINED_CHECK_MS = 2000;
export const ADMIN_SOCKET = 'admin.sock';

/**
 * One of `nodes=N` workers: the daemon of old on its own queue shard (from the primary,
 * through the environment), its admin API on a unix socket in the shard for the primary,
 * its records marked with `shard`. It stops as on SIGTERM when the primary goes away.
 * A worker that takes no mail (a shard no worker owns any more) stops once its shard is
 * empty, and removes the spool's directories, so that the next start does not adopt it again.
 */
export async function startWorker(options: { configDir: string }): Promise<RunningDaemon> {
  const env = readWorkerEnv(process.env);
  const { slot } = env;
  const daemon = await startDaemon({
    configDir: options.configDir,
    queueDir: slot.dir,
    handleSignals: true,
    worker: { shard: slot.shard, label: slot.label, adminSocket: join(slot.dir, ADMIN_SOCKET), listen: slot.listen },
    coordinator: workerCoordinator(env),
  });
  process.once('disconnect', () => void daemon.shutdown());
  process.send?.({ tern: 'worker-ready', addresses: daemon.addresses });
  if (slot.listen) return daemon;
  let drained = false;
  const timer = setInterval(() => {
    const q = daemon.queue();
    if (!q.recovered || q.queued > 0 || q.inFlight > 0) return;
    clearInterval(timer);
    drained = true;
    void daemon.shutdown();
  }, DRAINED_CHECK_MS);
  const stopped = daemon.stopped.then(async () => {
    clearInterval(timer);
    if (drained && daemon.queue().queued === 0) await removeDrained(slot.dir, slot.shard !== undefined);
  });
  return { ...daemon, stopped };
}

/**
 * A shard left empty: its spool directories hold only delivered mail (every message done),
 * so they go, and the next start adopts nothing. corrupt/ stays for the operator.
 */
async function removeDrained(dir: string, sharded: boolean): Promise<void> {
  for (const d of ['seg', 'msg', 'entries', 'tmp', ADMIN_SOCKET]) await rm(join(dir, d), { recursive: true, force: true });
  if (!sharded) return;
  await rm(join(dir, 'suspensions.json'), { force: true });
  await rm(join(dir, 'overrides.json'), { force: true });
  await rmdir(join(dir, 'corrupt')).catch(() => undefined);
  await rmdir(dir).catch(() => undefined);
}

/**
 * The worker's LimitCoordinator: asks the primary, with this worker's share as the answer
 * when the primary is slow or gone. The delivery side takes it where a single process takes
 * the in-process coordinator.
 */
export function workerCoordinator(env: WorkerEnv = readWorkerEnv(process.env)): IpcCoordinator | undefined {
  const channel = processChannel();
  if (!channel) return undefined;
  return new IpcCoordinator({ channel, timeoutMs: COORDINATION_TIMEOUT_MS, workers: env.workers, index: env.index });
}
