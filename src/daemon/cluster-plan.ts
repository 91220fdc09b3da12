import { availableParallelism } from 'node:os';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config/index.js';
import { shardDir, shardOfDir } from '../spool/index.js';

/** One queue directory and the worker that serves it (`nodes=N`). */
export interface ShardSlot {
  /** Written into new message ids; undefined for the unsharded queue/ (ids without `SK`). */
  readonly shard?: number;
  /** Its name in logs and answers: K, or `queue` for queue/ itself. */
  readonly label: string;
  readonly dir: string;
  /** false: a shard no worker owns any more, delivered to the end but not fed new mail. */
  readonly listen: boolean;
}

export interface ClusterPlan {
  readonly nodes: number;
  readonly slots: readonly ShardSlot[];
}

/** The spool's own directories: a queue directory holding one of them holds (or held) mail. */
const SPOOL_DIRS = ['seg', 'msg', 'entries'];

const holdsQueue = (dir: string) => SPOOL_DIRS.some((d) => existsSync(join(dir, d)));

/** `smtp.ini nodes`, with `cpus` as the cores Node may use. */
export function configuredNodes(configDir: string): number {
  const nodes = loadConfig(resolve(configDir)).smtp.nodes;
  return nodes === 'cpus' ? availableParallelism() : nodes;
}

/**
 * Which processes `tern start` runs. `nodes=1` with nothing to adopt: undefined, the single
 * process of old (no primary). Otherwise worker K owns queue/shard-K for K < N, and every
 * other queue directory still holding mail gets a worker of its own that delivers it and
 * takes no new mail, so that switching nodes never strands acknowledged mail:
 * - queue/ itself (a single process's queue) when N ≥ 2;
 * - queue/shard-K for K ≥ N, after N went down (with N = 1, worker 0 keeps queue/ itself,
 *   so that once those shards are delivered the next start is a single process again).
 */
export function clusterPlan(configDir: string, queueDir: string): ClusterPlan | undefined {
  const nodes = configuredNodes(configDir);
  const root = resolve(queueDir);
  const shardsOnDisk = existsSync(root)
    ? readdirSync(root, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => shardOfDir(d.name))
        .filter((k): k is number => k !== undefined && holdsQueue(shardDir(root, k)))
        .sort((a, b) => a - b)
    : [];
  const orphans = shardsOnDisk.filter((k) => nodes === 1 || k >= nodes);
  if (nodes === 1 && orphans.length === 0) return undefined;
  const slots: ShardSlot[] = [];
  if (nodes === 1) slots.push({ label: 'queue', dir: root, listen: true });
  else for (let k = 0; k < nodes; k++) slots.push({ shard: k, label: String(k), dir: shardDir(root, k), listen: true });
  if (nodes > 1 && holdsQueue(root)) slots.push({ label: 'queue', dir: root, listen: false });
  for (const k of orphans) slots.push({ shard: k, label: String(k), dir: shardDir(root, k), listen: false });
  return { nodes, slots };
}
