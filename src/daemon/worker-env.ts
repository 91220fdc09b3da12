import type { ShardSlot } from './cluster-plan.js';

/**
 * What the primary tells a worker through its environment (issue #16: the shard is given
 * by the primary, never derived from a pid, so a restarted worker finds its own queue).
 */
export interface WorkerEnv {
  readonly slot: ShardSlot;
  /** The workers the primary runs and this one's place among them, for the local share of limits. */
  readonly workers: number;
  readonly index: number;
}

export function workerEnv(w: WorkerEnv): Record<string, string> {
  return {
    TERN_SHARD: w.slot.shard === undefined ? '' : String(w.slot.shard),
    TERN_SHARD_LABEL: w.slot.label,
    TERN_SHARD_DIR: w.slot.dir,
    TERN_SHARD_LISTEN: w.slot.listen ? '1' : '0',
    TERN_WORKERS: String(w.workers),
    TERN_WORKER_INDEX: String(w.index),
  };
}

/** The worker's side; throws when the primary did not set it (a bug, not an operator's error). */
export function readWorkerEnv(env: NodeJS.ProcessEnv): WorkerEnv {
  const { TERN_SHARD: shard, TERN_SHARD_LABEL: label, TERN_SHARD_DIR: dir, TERN_SHARD_LISTEN: listen, TERN_WORKERS: workers, TERN_WORKER_INDEX: index } = env;
  if (shard === undefined || !label || !dir || !workers || index === undefined) throw new Error('a tern worker needs TERN_SHARD, TERN_SHARD_LABEL, TERN_SHARD_DIR, TERN_WORKERS and TERN_WORKER_INDEX from its primary');
  return {
    slot: { shard: shard === '' ? undefined : Number(shard), label, dir, listen: listen === '1' },
    workers: Number(workers),
    index: Number(index),
  };
}

/** Messages a worker sends its primary over the cluster channel. */
export type WorkerMessage = { readonly tern: 'worker-ready'; readonly addresses: readonly { host: string; port: number }[] };

export const isWorkerReady = (m: unknown): m is WorkerMessage =>
  typeof m === 'object' && m !== null && (m as WorkerMessage).tern === 'worker-ready' && Array.isArray((m as WorkerMessage).addresses);
